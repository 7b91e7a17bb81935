"""``berth events tail`` and ``berth projections rebuild``: operating the event flow."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

import typer

from berth.cli_support import quiet_logging
from berth.client import connection

events_app = typer.Typer(
    help="Watch the event stream.\n\nExample: berth events tail --follow", no_args_is_help=True
)
projections_app = typer.Typer(
    help="Rebuild projections from the event store.\n\nExample: berth projections rebuild",
    no_args_is_help=True,
)


def format_event(envelope: dict[str, Any]) -> str:
    """One line for an event: position, time, type, stream@version, actor, payload summary."""
    payload = {k: v for k, v in envelope.get("payload", {}).items() if k != "body"}
    actor = (envelope.get("metadata") or {}).get("actor") or "-"
    return (
        f"{envelope['position']:>8} {envelope['recorded_at'][:23]} {envelope['type']:<22}"
        f" {envelope['stream']}@{envelope['version']} {actor} "
        f"{json.dumps(payload, separators=(',', ':'))}"
    )


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", metavar="", help="keep printing new events")
    ] = False,
    last: Annotated[int, typer.Option(metavar="N", help="start this many events back (0: all)")] = 20,
) -> None:
    """Print events from JetStream, one line each (--follow waits for new ones).

    Reads the NATS of the berth up of --data-dir (or BERTH_NATS_URL).

    Example: berth events tail --last 50 --follow
    """
    from berth_common.settings import Settings

    nats_url = connection(ctx).nats_url()
    settings = Settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(nats_url, settings.nats_stream, follow, last))


async def _tail(url: str, stream: str, follow: bool, last: int) -> None:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        start = max(info.state.first_seq, info.state.last_seq - last + 1) if last else info.state.first_seq
        sub = await js.subscribe(
            ">",
            stream=stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start),
        )
        seen = start - 1
        while follow or seen < info.state.last_seq:
            try:
                msg = await sub.next_msg(timeout=1.0 if not follow else 3600)
            except TimeoutError:
                if not follow:
                    break
                continue
            seen = msg.metadata.sequence.stream
            print(format_event(json.loads(msg.data)), flush=True)
    finally:
        await nc.close()


@projections_app.command("rebuild")
def rebuild(ctx: typer.Context) -> None:
    """Rebuild every projection from the event store (writers wait while it runs).

    Works on the database of the berth up of --data-dir (or BERTH_DATABASE_URL).

    Example: berth projections rebuild
    """
    quiet_logging()
    database_url = connection(ctx).database_url()
    for name, count in asyncio.run(rebuild_all(database_url)):
        print(f"{name}: {count} events applied")


async def rebuild_all(database_url: str) -> list[tuple[str, int]]:
    """Rebuild every service's projections; return ``(projection, events applied)`` pairs."""
    from berth.allinone import all_projections
    from berth_common.db import create_pool
    from berth_common.eventstore import rebuild as rebuild_projection

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        return [(spec.name, await rebuild_projection(pool, spec)) for spec in all_projections()]
    finally:
        await pool.close()
