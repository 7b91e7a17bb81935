"""/metrics of a multi-worker server adds up every worker (prometheus-client multiprocess mode).

``berth serve all --workers 2``: requests on fresh connections land on either worker; every
scrape, whichever worker answers it, must count all of them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.support.databases import NATS_URL
from tests.support.net import free_port, wait_http

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
COUNT = re.compile(
    r"^berth_http_request_duration_seconds_count\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.M
)


def base_requests_counted(metrics: str) -> float:
    """The count of ``GET /v2/`` in a scrape, summed over its label sets (statuses)."""
    return sum(
        float(m["value"])
        for m in COUNT.finditer(metrics)
        if 'method="GET"' in m["labels"] and 'route="/v2/"' in m["labels"]
    )


def test_metrics_add_up_all_workers(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's metrics")
    workdir = scratch_dir
    port = free_port()
    with scratch_database() as dsn, scratch_stream() as stream:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BERTH_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env.update(
            BERTH_DATABASE_URL=dsn,
            BERTH_NATS_URL=NATS_URL,
            BERTH_NATS_STREAM=stream,
            BERTH_STORAGE__ROOT=str(workdir / "storage"),
            BERTH_DATA_DIR=str(workdir),
            BERTH_ADMIN_PASSWORD="metrics-admin",
            BERTH_ACCESS_LOG="false",
        )
        with (workdir / "server.log").open("wb") as log:
            server = subprocess.Popen(
                ["uv", "run", "--frozen", "berth", "serve", "all", "--port", str(port), "--workers", "2"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/v2/", timeout=90)
            before = base_requests_counted(httpx.get(f"{url}/metrics").text)
            for _ in range(60):  # a new connection each: the kernel spreads them over the workers
                assert httpx.get(f"{url}/v2/", headers={"Connection": "close"}).status_code == 401
            scrapes = [base_requests_counted(httpx.get(f"{url}/metrics").text) for _ in range(6)]
        finally:
            server.terminate()
            server.wait(30)
    log_text = (workdir / "server.log").read_text()
    shutil.rmtree(workdir, ignore_errors=True)
    assert all(count - before == 60 for count in scrapes), (before, scrapes)
    assert "Traceback" not in log_text, log_text[-2000:]
