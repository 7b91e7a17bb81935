"""Old schema versions are upcast on read and never rewritten (docs/DESIGN.md §2).

A test-only event type ``test.renamed`` is "deployed" twice: first at v1 (field ``name``),
then at v2 (field renamed to ``title``, new field ``note``) with a v1 → v2 upcaster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from berth_common.events import Event, FeedUpdated, all_types, catalogue, decode
from berth_common.events.base import Metadata
from berth_common.events.catalogue import UnknownEventType
from berth_common.eventstore import EventStore
from berth_common.eventstore.relay import bus_envelope, read_encoded
from tests.support.databases import eventstore_pool


class RenamedV1(Event):
    """The old shape."""

    type_name = "test.renamed"
    schema_version = 1
    name: str


class RenamedV2(Event):
    """The current shape: ``name`` became ``title``; ``note`` is new."""

    type_name = "test.renamed"
    schema_version = 2
    title: str
    note: str


def upcast_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2."""
    return {"title": payload["name"], "note": "upcast from v1"}


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``deploy(cls, upcasters)``: put a test event class into the catalogue for one test."""

    def install(cls: type[Event], upcasters: dict[int, Any] | None = None) -> None:
        monkeypatch.setitem(catalogue._TYPES, cls.type_name, cls)
        for version, fn in (upcasters or {}).items():
            monkeypatch.setitem(catalogue._UPCASTERS, (cls.type_name, version), fn)

    yield install


def test_decode_upcasts_old_versions(deploy: Any) -> None:
    deploy(RenamedV2, {1: upcast_v1})
    event = decode("test.renamed", 1, {"name": "a"})
    assert event == RenamedV2(title="a", note="upcast from v1")
    assert decode("test.renamed", 2, {"title": "b", "note": "n"}) == RenamedV2(title="b", note="n")


def test_decode_refuses_what_it_cannot_read(deploy: Any) -> None:
    deploy(RenamedV2)
    with pytest.raises(ValueError, match="no upcaster"):
        decode("test.renamed", 1, {"name": "a"})
    with pytest.raises(ValueError, match="newer"):
        decode("test.renamed", 3, {"title": "a", "note": ""})
    with pytest.raises(UnknownEventType):
        decode("test.never_registered", 1, {})


@pytest.mark.integration
async def test_store_upcasts_on_read_and_never_rewrites(deploy: Any) -> None:
    async with eventstore_pool(max_size=2) as pool:
        store = EventStore(pool)
        deploy(RenamedV1)
        async with store.unit_of_work() as uow:
            await uow.emit("test:1", RenamedV1(name="old"))
        deploy(RenamedV2, {1: upcast_v1})
        [read] = await store.read_stream("test:1")
        assert read.payload == RenamedV2(title="old", note="upcast from v1")
        assert read.schema_version == 1
        envelope = read.envelope()
        assert envelope["schema_version"] == 2
        assert decode("test.renamed", 2, envelope["payload"]) == read.payload
        row = await pool.fetchrow("SELECT schema_version, payload FROM eventstore.events")
        assert row is not None
        assert row["schema_version"] == 1
        stored = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
        assert stored == {"name": "old"}


@pytest.mark.integration
async def test_relay_envelopes_built_in_sql_equal_the_python_ones(deploy: Any) -> None:
    """``relay.read_encoded`` (PostgreSQL builds the JSON) publishes what ``bus_envelope(
    RecordedEvent.envelope(), limit)`` would, for every golden event, for events over the
    bound (payload omitted: the one rule for every event, which replaced the manifest-only
    ``body_omitted``) and for events stored at an older schema version (upcast in Python),
    small and over the bound."""
    limit = 4096  # every golden envelope is well below, the large events well above
    golden = Path(__file__).parent / "golden"
    meta = Metadata(actor="alice", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    async with eventstore_pool(max_size=2) as pool:
        store = EventStore(pool)
        deploy(RenamedV1)
        async with store.unit_of_work(metadata=meta) as uow:
            await uow.emit("test:1", RenamedV1(name="old"))
            await uow.emit("test:2", RenamedV1(name="x" * 3 * limit))
            await uow.emit("feed:large", FeedUpdated(feed="large", changes={"description": "y" * 2 * limit}))
            for type_name, cls in sorted(all_types().items()):
                if type_name.startswith("test."):
                    continue
                payload = json.loads((golden / f"{type_name}.v{cls.schema_version}.json").read_text())
                await uow.emit(f"golden:{type_name}", decode(type_name, cls.schema_version, payload))
        async with store.unit_of_work(
            metadata=Metadata(actor="bob", request_id="r" * 2 * limit, traceparent=meta.traceparent)
        ) as uow:
            await uow.emit("feed:metadata", FeedUpdated(feed="metadata", changes={}))
        deploy(RenamedV2, {1: upcast_v1})
        expected = [bus_envelope(e.envelope(), limit) for e in await store.read_all()]
        async with pool.acquire() as conn:
            encoded = await read_encoded(conn, 0, 1000, limit)
    assert len(encoded) == len(expected) > 20
    for event, want in zip(encoded, expected, strict=True):
        got = json.loads(event.data)
        assert datetime.fromisoformat(got.pop("recorded_at")) == datetime.fromisoformat(
            want.pop("recorded_at")
        )
        assert got == json.loads(json.dumps(want)), want["type"]
        assert (event.type, event.position, event.event_id, event.traceparent) == (
            want["type"],
            want["position"],
            want["event_id"],
            meta.traceparent,
        )
    assert json.loads(encoded[0].data)["payload"] == {"title": "old", "note": "upcast from v1"}
    assert all(len(e.data) <= limit for e in encoded)
    omitted = [json.loads(e.data) for e in encoded if json.loads(e.data).get("payload_omitted")]
    assert [o["stream"] for o in omitted] == ["test:2", "feed:large", "feed:metadata"]
    assert all("payload" not in o for o in omitted)
    assert [o.get("metadata", {}).get("actor") for o in omitted] == ["alice", "alice", None]
    assert omitted[-1]["metadata_omitted"] is True and "metadata" not in omitted[-1]
    assert not any("body_omitted" in json.loads(e.data) for e in encoded)


def test_feed_created_v1_is_upcast_to_a_feed_without_sparse_content() -> None:
    """``feed.created`` v2 added ``allow_sparse``; feeds recorded at v1 read back with it off."""
    from berth_common.events import FeedCreated

    golden = json.loads((Path(__file__).parent / "golden" / "feed.created.v1.json").read_text())
    event = decode("feed.created", 1, golden)
    assert event == FeedCreated(**golden, allow_sparse=False)
    assert FeedCreated.schema_version == 2
