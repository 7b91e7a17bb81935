"""``berth events tail`` and ``berth projections rebuild``: operating the event flow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
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


LIST_SHOWN = 3  # a longer list in a payload is printed as its first items and its length


def format_event(envelope: dict[str, Any]) -> str:
    """One line for an event: position, time, type, stream@version, actor, payload summary.

    A manifest's ``body`` is left out and long lists are cut (``[a, b, c, "… 37448 items"]``).
    An envelope whose payload the bus left out (``payload_omitted``) and that could not be
    read from the event store says so instead of a payload.
    """
    if envelope.get("payload_omitted") and "payload" not in envelope:
        summary = (
            "(payload omitted from the bus message; set BERTH_DATABASE_URL to read it from the event store)"
        )
    else:
        payload = {k: _short(v) for k, v in envelope.get("payload", {}).items() if k != "body"}
        summary = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    actor = (envelope.get("metadata") or {}).get("actor") or "-"
    return (
        f"{envelope['position']:>8} {envelope['recorded_at'][:23]} {envelope['type']:<22}"
        f" {envelope['stream']}@{envelope['version']} {actor} {summary}"
    )


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) > LIST_SHOWN + 1:
        return [*value[:LIST_SHOWN], f"… {len(value)} items"]
    return value


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", metavar="", help="keep printing new events")
    ] = False,
    last: Annotated[int, typer.Option(metavar="N", help="start this many events back (0: all)")] = 20,
) -> None:
    """Print events from JetStream, one line each (--follow waits for new ones).

    Reads the NATS of the berth up of --data-dir (or BERTH_NATS_URL). Events whose payload
    the bus left out (too large for a bus message) are read from the event store when its
    PostgreSQL is known (BERTH_DATABASE_URL or the data dir's run.json).

    Example: berth events tail --last 50 --follow
    """
    from berth.runfile import resolve
    from berth_common.settings import Settings

    where = connection(ctx)
    nats_url = where.nats_url()
    database_url = resolve(where.data_dir_or_default)[1]  # optional: omitted payloads
    settings = Settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(nats_url, settings.nats_stream, follow, last, database_url))


async def _tail(url: str, stream: str, follow: bool, last: int, database_url: str | None) -> None:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url, connect_timeout=5)
    store = _StoreReader(database_url)
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
            print(format_event(await store.complete(json.loads(msg.data))), flush=True)
    finally:
        await store.close()
        await nc.close()


class _StoreReader:
    """Reads events whose payload the bus left out from the event store (when reachable)."""

    def __init__(self, database_url: str | None) -> None:
        self.url, self.failed = database_url, False
        self.conn: Any = None

    async def complete(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """``envelope`` with its payload (as stored) from the store, if it was omitted and can
        be read."""
        from berth_common.eventstore.envelopes import is_omitted

        if not is_omitted(envelope) or not self.url or self.failed:
            return envelope
        try:
            if self.conn is None:
                import asyncpg

                self.conn = await asyncpg.connect(self.url)
            payload = await self.conn.fetchval(
                "SELECT payload::text FROM eventstore.events WHERE position = $1", int(envelope["position"])
            )
        except Exception as exc:  # the bus line is still worth printing
            print(f"cannot read omitted payloads from the event store: {exc}", file=sys.stderr)
            self.failed = True
            return envelope
        return envelope if payload is None else {**envelope, "payload": json.loads(payload)}

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


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
