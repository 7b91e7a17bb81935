"""Operators' surface of a running Berth: /readyz, a token on /metrics, and the metrics alerts use.

docs/OPERATIONS.md lists the metrics; deploy/prometheus/rules.yaml alerts on them. Each test
reads the Prometheus text the app serves (or, for the timer-read gauges, samples once).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from berth.migrate_cli import apply_all
from berth_common.db import set_wait_for_migrations
from berth_common.settings import MetricsSettings
from berth_common.storage import Stores
from berth_common.telemetry.sampler import sample_once
from berth_gc.domain.collect import collect_garbage
from berth_gc.domain.purge import purge_expired_uploads
from tests.support.berth_app import BerthApp, berth_app
from tests.support.databases import temporary_database

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, labels): value}`` of a Prometheus text scrape."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(berth: BerthApp, **labels_of: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await berth.client.get("/metrics")
    assert r.status_code == 200, r.text
    return samples(r.text)


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def _blob(berth: BerthApp, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await berth.client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert r.status_code == 201, r.text
    return digest


async def test_readyz_checks_database_and_migrations() -> None:
    async with berth_app() as berth:
        r = await berth.client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json() == {"ready": True, "checks": {"database": "ok", "migrations": "ok", "bus": "ok"}}
        pool = berth.app.state.resources.pool
        await pool.execute("DELETE FROM public.berth_migrations WHERE component = 'api' AND version = 1")
        r = await berth.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["migrations"] == {"missing": ["api/0001"]}
        assert (await berth.client.get("/healthz")).status_code == 200  # alive all the same


async def test_metrics_require_the_configured_bearer_token(tmp_path: Path) -> None:
    secret = tmp_path / "metrics-token"
    secret.write_text("s3cret-scrape\n")
    async with berth_app(with_bus=False, metrics=MetricsSettings(token_file=secret)) as berth:
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=berth.app), base_url="http://b")
        async with plain:
            assert (await plain.get("/metrics")).status_code == 401
            wrong = await plain.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
            right = await plain.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
            assert right.status_code == 200 and "berth_http_request_duration_seconds" in right.text


async def test_bytes_per_feed_only_for_listed_feeds() -> None:
    async with berth_app(with_bus=False, metrics=MetricsSettings(feed_labels=["loud"])) as berth:
        await berth.create_feed("loud")
        await berth.create_feed("quiet")
        before = await scrape(berth)
        digest = await _blob(berth, "loud/img", b"a" * 1000)
        await _blob(berth, "quiet/img", b"b" * 300)
        assert (await berth.client.get(f"/v2/loud/img/blobs/{digest}")).content == b"a" * 1000
        after = await scrape(berth)

    def delta(name: str, feed: str) -> float:
        return value(after, name, service="all", feed=feed) - value(before, name, service="all", feed=feed)

    assert delta("berth_feed_bytes_received_total", "loud") == 1000
    assert delta("berth_feed_bytes_received_total", "other") == 300
    assert delta("berth_feed_bytes_sent_total", "loud") >= 1000
    assert not [k for k in after if k[0].startswith("berth_feed_bytes") and ("feed", "quiet") in k[1]]


async def test_token_requests_by_grant_and_outcome() -> None:
    async with berth_app(with_bus=False) as berth:
        before = await scrape(berth)
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=berth.app), base_url="http://b")
        async with plain:
            assert (await plain.get("/token?scope=repository:x/y:pull")).status_code == 200
            assert (await plain.get("/token", auth=("admin", "wrong"))).status_code == 401
            bad = await plain.post("/token", data={"grant_type": "refresh_token", "refresh_token": "br_x"})
            assert bad.status_code == 401
            assert (await plain.get("/token?scope=nonsense")).status_code == 400
        after = await scrape(berth)
    name = "berth_auth_token_requests_total"
    for grant, outcome in (
        ("anonymous", "issued"), ("basic", "denied"), ("refresh_token", "denied"), ("anonymous", "invalid")
    ):  # fmt: skip
        assert (
            value(after, name, grant=grant, outcome=outcome)
            - value(before, name, grant=grant, outcome=outcome)
            == 1
        ), (grant, outcome)


class UnreachableStore:
    """A storage driver whose listing fails (the sweep lists the store)."""

    def list_created(self, prefix: str, since: Any) -> Any:
        raise OSError("store unreachable")


async def test_gc_and_purge_runs_are_recorded_with_what_they_freed() -> None:
    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("gcm")
        store, storage = berth.app.state.resources.store, berth.app.state.blob_stores
        await _blob(berth, "gcm/img", b"x" * 4096)  # linked, referenced by no manifest
        started = await berth.client.post("/v2/gcm/img/blobs/uploads/")
        assert (await berth.client.patch(started.headers["location"], content=b"y" * 100)).status_code == 202
        before = await scrape(berth)
        later = datetime.now(UTC) + timedelta(days=2)
        await purge_expired_uploads(store, storage, timedelta(hours=1), now=later)
        await collect_garbage(store, storage, timedelta(hours=1), now=later)
        unreachable = Stores({"default": UnreachableStore()})  # type: ignore[dict-item]
        with pytest.raises(OSError):  # a failing run (here: the store is unreachable)
            await collect_garbage(store, unreachable, timedelta(hours=1), now=later)
        after = await scrape(berth)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("berth_gc_runs_total", job="gc", outcome="success") == 1
    assert delta("berth_gc_runs_total", job="gc", outcome="failure") == 1
    assert delta("berth_gc_runs_total", job="upload_purge", outcome="success") == 1
    assert delta("berth_gc_objects_freed_total", job="gc") == 1  # the blob
    assert delta("berth_gc_bytes_freed_total", job="gc") == 4096
    assert delta("berth_gc_objects_freed_total", job="upload_purge") == 1  # the session
    assert delta("berth_gc_bytes_freed_total", job="upload_purge") == 100
    assert delta("berth_gc_run_seconds_count", job="gc") == 2
    assert value(after, "berth_gc_last_success_timestamp_seconds", job="gc") > 0


def _certificate(path: Path, not_after: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(Encoding.PEM))


async def test_sampled_gauges_pool_uploads_and_certificate_expiry(tmp_path: Path) -> None:
    not_after = datetime(2031, 5, 1, 12, tzinfo=UTC)
    cert = tmp_path / "tls.crt"
    _certificate(cert, not_after)
    async with berth_app(with_bus=False, metrics=MetricsSettings(tls_certificates=[cert])) as berth:
        await berth.create_feed("samp")
        for _ in range(2):
            assert (await berth.client.post("/v2/samp/img/blobs/uploads/")).status_code == 202
        resources = berth.app.state.resources
        async with resources.pool.acquire():  # one connection visibly in use
            await sample_once(resources.pool, berth.settings.metrics.tls_certificates, resources.samplers)
            scraped = await scrape(berth)
    assert value(scraped, "berth_upload_sessions_open") == 2
    assert value(scraped, "berth_db_pool_connections", state="in_use") >= 1
    assert value(scraped, "berth_db_pool_max_connections") == berth.settings.db_pool_max
    expiry = value(scraped, "berth_tls_certificate_expiry_timestamp_seconds", certificate=str(cert))
    assert expiry == not_after.timestamp()


@contextlib.contextmanager
def waiting_for_migrations() -> Iterator[None]:
    set_wait_for_migrations(True)
    try:
        yield
    finally:
        set_wait_for_migrations(False)


async def test_services_wait_for_berth_migrate_when_not_migrating_on_start() -> None:
    """``migrate_on_start: false``: the app applies nothing and polls until ``berth migrate``
    (here ``apply_all``) has run, then starts and is ready."""
    from berth.allinone import create_app
    from berth_common.settings import Settings

    async with temporary_database() as dsn:
        app = create_app(Settings(database_url=dsn, nats_url=None, migrate_on_start=False))
        with waiting_for_migrations():
            lifespan = app.router.lifespan_context(app)
            starting = asyncio.create_task(lifespan.__aenter__())
            conn = await asyncpg.connect(dsn)
            try:
                await _until_polling_for_migrations(conn, dsn)
                assert not starting.done()
                assert await conn.fetchval("SELECT to_regclass('eventstore.events')") is None
                applied = await apply_all(dsn)
                assert "eventstore/0001_events.sql" in applied and "api/0001_api.sql" in applied
                await asyncio.wait_for(starting, 60)
                client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
                async with client:
                    assert (await client.get("/readyz")).json()["ready"] is True
                assert await apply_all(dsn) == []  # nothing left to do
            finally:
                await conn.close()
                if starting.done() and not starting.exception():
                    await lifespan.__aexit__(None, None, None)
                else:
                    starting.cancel()


async def _until_polling_for_migrations(conn: asyncpg.Connection, dsn: str) -> None:
    """Wait until a backend of the app has asked for the recorded migrations (pg_stat_activity)."""
    database = dsn.rsplit("/", 1)[1]
    for _ in range(600):
        polled = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
            " AND query LIKE 'SELECT component, version FROM public.berth_migrations%'",
            database,
        )
        if polled:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the app never looked for its migrations")
