"""The gc admin API (``/api/gc/runs``): dry runs count without deleting, real runs delete and
count per feed with bytes, ``--feed`` limits a run, runs are listed newest first, and only an
admin may ask (issue 15 §4)."""

from __future__ import annotations

import os

import httpx

from tests.integration.test_gc import _blob
from tests.support.berth_app import berth_app


async def test_dry_run_then_run_per_feed_counts_and_bytes() -> None:
    async with berth_app(with_bus=False) as berth:
        c = berth.client
        for feed in ("ga", "gb"):
            await berth.create_feed(feed)
        a1, a2, b1 = os.urandom(1000), os.urandom(2000), os.urandom(3000)
        for repo, data in (("ga/x", a1), ("ga/y", a2), ("gb/x", b1)):
            await _blob(berth, repo, data)  # pushed, never referenced by a manifest

        dry = await c.post("/api/gc/runs", json={"dry_run": True, "grace_seconds": 0})
        assert dry.status_code == 201, dry.text
        run = dry.json()
        assert (run["status"], run["dry_run"], run["trigger"], run["actor"]) == (
            "succeeded",
            True,
            "api",
            "admin",
        )
        assert run["result"]["feeds"]["ga"]["unlinked"] == 2 and run["result"]["feeds"]["gb"]["unlinked"] == 1
        assert (run["result"]["unlinked"], run["result"]["deleted"]) == (3, 3)
        assert run["result"]["bytes_freed"] == 6000
        assert await berth.storage.stat(f"blobs/sha256/{_hex(a1)[:2]}/{_hex(a1)}") is not None  # kept

        only_a = (await c.post("/api/gc/runs", json={"feed": "ga", "grace_seconds": 0})).json()
        assert only_a["status"] == "succeeded" and only_a["feed"] == "ga"
        assert only_a["result"]["feeds"]["ga"] == {
            "unlinked": 2, "deleted": 2, "bytes": 3000, "expired": 0, "expired_bytes": 0,
        }  # fmt: skip
        assert "gb" not in only_a["result"]["feeds"]
        assert await berth.storage.stat(f"blobs/sha256/{_hex(a1)[:2]}/{_hex(a1)}") is None
        assert (await c.head(f"/v2/gb/x/blobs/sha256:{_hex(b1)}")).status_code == 200

        rest = (await c.post("/api/gc/runs", json={"grace_seconds": 0})).json()
        assert (rest["result"]["unlinked"], rest["result"]["deleted"], rest["result"]["bytes_freed"]) == (
            1,
            1,
            3000,
        )

        listed = (await c.get("/api/gc/runs")).json()["runs"]
        assert [r["id"] for r in listed[:3]] == [rest["id"], only_a["id"], run["id"]]
        assert (await c.get(f"/api/gc/runs/{only_a['id']}")).json()["result"] == only_a["result"]


async def test_started_run_is_followed_to_its_end() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gw")
        await _blob(berth, "gw/x", os.urandom(500))
        started = await berth.client.post("/api/gc/runs", json={"grace_seconds": 0, "wait": False})
        assert started.status_code == 202 and started.json()["status"] == "running"
        run_id = started.json()["id"]
        while (run := (await berth.client.get(f"/api/gc/runs/{run_id}")).json())["status"] == "running":
            pass
        assert run["status"] == "succeeded" and run["result"]["deleted"] == 1


async def test_errors_unknown_feed_unknown_run_and_not_admin() -> None:
    async with berth_app(with_bus=False) as berth:
        c = berth.client
        unknown = await c.post("/api/gc/runs", json={"feed": "nosuch"})
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        missing = await c.get("/api/gc/runs/not-a-run")
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"
        bad = await c.post("/api/gc/runs", json={"grace_seconds": -5})
        assert bad.status_code == 400 and "errors" in bad.json()
        anonymous = httpx.AsyncClient(transport=c._transport, base_url=str(c.base_url))
        async with anonymous:
            refused = await anonymous.post("/api/gc/runs", json={})
            assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "UNAUTHORIZED"


def _hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def test_a_run_whose_process_died_is_closed_by_the_next_run() -> None:
    """A row left 'running' by a gc process killed mid-run (here: inserted as that process
    leaves it) is closed as failed, saying so, by the next run that takes the run lock; the
    result is stored as a JSON object (it was a JSON string inside jsonb)."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from berth_gc.domain.runs import INTERRUPTED

    async with berth_app(with_bus=False) as berth:
        pool, dead = berth.app.state.resources.pool, uuid.uuid4()
        await pool.execute(
            "INSERT INTO gc.runs(id, trigger, dry_run, status, started_at)"
            " VALUES ($1, 'api', false, 'running', $2)",
            dead,
            datetime.now(UTC) - timedelta(minutes=5),
        )
        run = (await berth.client.post("/api/gc/runs", json={"grace_seconds": 0})).json()
        assert run["status"] == "succeeded"
        closed = (await berth.client.get(f"/api/gc/runs/{dead}")).json()
        assert (closed["status"], closed["error"]) == ("failed", INTERRUPTED)
        assert closed["finished_at"] is not None
        kind = await pool.fetchval(
            "SELECT jsonb_typeof(result) FROM gc.runs WHERE id = $1", uuid.UUID(run["id"])
        )
        assert kind == "object"


async def test_a_scheduled_turn_that_finds_the_lock_taken_leaves_no_record() -> None:
    """Every replica runs the schedule; the ones that find another run holding the lock leave
    no row (one per replica per interval would pile up), while a skipped run asked for is
    recorded as skipped."""
    from berth_gc.domain.collect import GC_LOCK
    from berth_gc.domain.runs import run_once

    async with berth_app(with_bus=False) as berth:
        resources = berth.app.state.resources
        async with resources.pool.acquire() as holder:
            assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK)
            try:
                stores = berth.app.state.gc_stores
                turn = await run_once(resources.store, stores, resources.settings, trigger="schedule")
                asked = (await berth.client.post("/api/gc/runs", json={})).json()
            finally:
                await holder.execute("SELECT pg_advisory_unlock($1)", GC_LOCK)
        assert (turn["status"], asked["status"]) == ("skipped", "skipped")
        rows = await resources.pool.fetch("SELECT id, trigger, status FROM gc.runs")
        assert [(str(r["id"]), r["trigger"], r["status"]) for r in rows] == [(asked["id"], "api", "skipped")]


async def test_an_age_beyond_any_timestamp_is_a_clear_400() -> None:
    """grace_seconds/purge_age_seconds past 100 years were a 500 (OverflowError) or a failed run."""
    async with berth_app(with_bus=False) as berth:
        for body in ({"grace_seconds": 10**20}, {"purge_age_seconds": 2**62}, {"grace_seconds": 10**13}):
            r = await berth.client.post("/api/gc/runs", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["errors"][0]["code"] == "BAD_REQUEST"
