"""The JetStream side of a consumer: its durable's filter and binding it (made if missing).

A durable receives only the subjects of the types its consumer applies, so it never sees the
bulk of the traffic (uploads, links). NATS 2.9 takes one filter subject per consumer: types
of one aggregate become ``<prefix>.<aggregate>.>``, types of several the whole stream unless
the consumer names fewer ``bus_types`` (the rest then reaches it by catch-up from the event
store, ``catchup``). NATS ≥ 2.10 takes several: the exact subject of each type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from berth_common.bus import Bus

log = structlog.get_logger("berth.consumer")


def one_filter(prefix: str, types: Iterable[str]) -> str:
    """``types`` as one JetStream filter: one type → its subject; types of one aggregate
    (``manifest.pushed``, ``manifest.deleted``) → ``<prefix>.manifest.>``; else ``<prefix>.>``."""
    names = set(types)
    aggregates = {t.split(".", 1)[0] for t in names}
    if len(names) == 1:
        return f"{prefix}.{names.pop()}"
    if len(aggregates) == 1:
        return f"{prefix}.{aggregates.pop()}.>"
    return f"{prefix}.>"


def filter_subjects(bus: Bus, types: Iterable[str], bus_types: Iterable[str]) -> list[str]:
    """The durable's filter: on NATS 2.9 the one filter of ``bus_types``; on a server that
    takes several (≥ 2.10) the one filter of ``types`` or, if that is the whole stream, the
    exact subject of each type (then every type arrives by bus)."""
    if not bus.multiple_filters:
        return [one_filter(bus.prefix, bus_types)]
    one = one_filter(bus.prefix, types)
    if one != f"{bus.prefix}.>":
        return [one]
    return sorted(f"{bus.prefix}.{t}" for t in types)


async def subscribe(bus: Bus, name: str, subjects: list[str]) -> Any:
    """Bind the durable pull consumer ``name`` filtered to ``subjects``, making the stream and
    the durable if they do not exist (explicit acks, up to 1000 pending, 60 s ack wait).

    A durable made with another filter (an older Berth, another server version) is replaced
    by one that starts after its acknowledged floor; what that skips or repeats is caught up
    from the store or skipped by position.

    Raises:
        nats.errors.Error: NATS is unreachable or refused.
    """
    await bus.ensure_stream()
    start = None
    with contextlib.suppress(NotFoundError):
        info = await bus.js.consumer_info(bus.stream, name)
        config = info.config
        current = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
        if sorted(current) != subjects:
            start = (info.ack_floor.stream_seq or 0) + 1 if info.ack_floor else 1
            await bus.js.delete_consumer(bus.stream, name)
            log.info("consumer.refiltered", consumer=name, subjects=subjects, start=start)
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        max_ack_pending=1000,
        ack_wait=60,
        deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )
    return await bus.js.pull_subscribe(subjects[0], durable=name, stream=bus.stream, config=config)
