"""/metrics of a multi-worker server adds up every worker (prometheus-client multiprocess mode).

``berth serve all --workers 2``: requests on fresh connections land on either worker; every
scrape, whichever worker answers it, must count all of them. The per-worker files of the
multiprocess folder (one per process id) show that both workers served some: a scrape that
counted only its own worker could not add up then.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

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


#: prometheus-client's reader of one multiprocess file: ``(key JSON, value, …)`` per sample.
READ_VALUES: Callable[[str], list[tuple[Any, ...]]] = MmapedDict.read_all_values_from_file


def requests_per_worker(metrics_dir: Path) -> dict[str, float]:
    """``GET /v2/`` requests each worker process recorded, from its ``histogram_<pid>.db`` file
    (the files keep a histogram's buckets uncumulated: their sum is the request count)."""
    counts: dict[str, float] = {}
    for path in metrics_dir.glob("histogram_*.db"):
        total = 0.0
        for entry in READ_VALUES(str(path)):
            _, sample, labels, _ = json.loads(entry[0])
            if (
                sample == "berth_http_request_duration_seconds_bucket"
                and labels.get("route") == "/v2/"
                and labels.get("method") == "GET"
            ):
                total += entry[1]
        counts[path.stem.removeprefix("histogram_")] = total
    return counts


def test_metrics_add_up_all_workers(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's metrics")
    workdir = scratch_dir
    port = free_port()
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
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
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
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
            per_worker = requests_per_worker(metrics_dir)
        finally:
            server.terminate()
            server.wait(30)
    log_text = (workdir / "server.log").read_text()
    shutil.rmtree(workdir, ignore_errors=True)
    assert all(count - before == 60 for count in scrapes), (before, scrapes)
    served = {pid: count for pid, count in per_worker.items() if count > 0}
    assert len(served) == 2, per_worker  # both workers answered some of the requests
    assert sum(served.values()) == scrapes[-1], (per_worker, scrapes)
    assert "Traceback" not in log_text, log_text[-2000:]
