"""A real Prometheus (Debian's ``prometheus``) scrapes a running Berth with a bearer token and
evaluates deploy/prometheus/rules.yaml against it (docs/OPERATIONS.md, "Metrics").

``berth serve all`` runs with ``metrics.token_file``; Prometheus scrapes ``/metrics`` every
second with ``authorization.credentials_file``. The test waits (a deadline, not a measure: the
first scrape takes ~10 s) until Prometheus reports the target up, holds Berth's request
histogram and bytes per feed, has loaded every alert, and has evaluated a recording rule.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from berth.token_auth import RegistryAuth
from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.support.databases import NATS_URL
from tests.support.net import free_port, wait_http

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
DEADLINE = 120.0  # seconds for Prometheus to have scraped and evaluated (not a measure)
TOKEN = "prometheus-scrape-token"


@contextlib.contextmanager
def running(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def prometheus_config(workdir: Path, berth_port: int) -> Path:
    token_file = workdir / "scrape-token"
    token_file.write_text(TOKEN)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "berth",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [f"127.0.0.1:{berth_port}"]}],
            }
        ],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            found = check()
            if found:
                return found
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never had {what}")


def test_prometheus_scrapes_berth_and_evaluates_the_rules(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's metrics")
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: scripts/test installs Debian's prometheus package")
    berth_port, prom_port = free_port(), free_port()
    (scratch_dir / "metrics-token").write_text(TOKEN + "\n")
    with scratch_database() as dsn, scratch_stream() as stream:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BERTH_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env.update(
            BERTH_DATABASE_URL=dsn, BERTH_NATS_URL=NATS_URL, BERTH_NATS_STREAM=stream,
            BERTH_STORAGE__ROOT=str(scratch_dir / "storage"), BERTH_ADMIN_PASSWORD="prom-admin",
            BERTH_METRICS__TOKEN_FILE=str(scratch_dir / "metrics-token"),
            BERTH_METRICS__FEED_LABELS="promfeed", BERTH_METRICS__SAMPLE_SECONDS="1",
        )  # fmt: skip
        berth_cmd = ["uv", "run", "--frozen", "berth", "serve", "all", "--port", str(berth_port)]
        with running(berth_cmd, scratch_dir / "berth.log", env):
            url = f"http://127.0.0.1:{berth_port}"
            wait_http(f"{url}/v2/", timeout=90)
            assert httpx.get(f"{url}/metrics").status_code == 401  # the token is required
            _traffic(url)
            prom_cmd = [
                prometheus, f"--config.file={prometheus_config(scratch_dir, berth_port)}",
                f"--storage.tsdb.path={scratch_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
            ]  # fmt: skip
            with running(prom_cmd, scratch_dir / "prometheus.log"):
                prom = f"http://127.0.0.1:{prom_port}"
                wait_http(f"{prom}/-/ready", timeout=60, ok=(200,))
                _assert_scraped(prom)


def _traffic(url: str) -> None:
    """A feed, a blob pushed to it, and some 401s: series for the rules to work on."""
    auth = RegistryAuth("admin", "prom-admin")
    with httpx.Client(base_url=url, auth=auth, timeout=30) as client:
        assert client.post("/api/feeds", json={"name": "promfeed"}).status_code == 201
        data = b"prometheus" * 100
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert (
            client.post(f"/v2/promfeed/img/blobs/uploads/?digest={digest}", content=data).status_code == 201
        )
    for _ in range(5):
        httpx.get(f"{url}/v2/")


def _assert_scraped(prom: str) -> None:
    up = until("the target up", lambda: query(prom, 'up{job="berth"} == 1'))
    assert up[0]["metric"]["instance"].startswith("127.0.0.1:")
    until("request counts", lambda: query(prom, 'berth_http_request_duration_seconds_count{route="/v2/"}'))
    received = until(
        "bytes of the labelled feed", lambda: query(prom, 'berth_feed_bytes_received_total{feed="promfeed"}')
    )
    assert float(received[0]["value"][1]) == 1000
    until("the pool gauge", lambda: query(prom, "berth_db_pool_max_connections > 0"))
    until("a recording rule's result", lambda: query(prom, "service:berth_http_requests:rate5m"))
    rules = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
    expected = {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    assert loaded == expected
    firing = query(prom, 'ALERTS{alertstate="firing"}')
    assert not firing, firing  # a healthy Berth raises nothing
