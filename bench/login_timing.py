"""How long a failed ``/token`` login takes, for an existing and for an unknown user name.

Run by hand: ``uv run python -m bench.login_timing [--tries 50]``. Starts ``berth serve all``
(one process) on a fresh database with the failure limits raised out of the way, creates user
``timing``, then sends ``GET /token`` with a wrong password, alternating between ``timing``
(exists: the argon2id check runs) and a fresh unknown name each time, and prints the median
and quartiles of each in milliseconds. A difference between the two medians is what an
attacker measures to tell user names apart (docs/SECURITY.md, "Credentials and rate limiting").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from berth.token_auth import RegistryAuth
from tests.support.databases import temporary_database
from tests.support.net import free_port, wait_http

REPO_ROOT = Path(__file__).resolve().parents[1]
BERTH_EXE = Path(sys.executable).parent / "berth"
ADMIN_PASSWORD = "bench-admin"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _measure(url: str, tries: int) -> dict[str, list[float]]:
    """``{"existing": [ms…], "unknown": [ms…]}``: one keep-alive client, alternating requests."""
    times: dict[str, list[float]] = {"existing": [], "unknown": []}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(tries + 5):  # the first 5 rounds warm up (connection, caches)
            for kind, user in (("existing", "timing"), ("unknown", f"nobody{i}x{os.getpid()}")):
                began = time.perf_counter()
                r = client.get("/token", params={"service": "berth"}, headers=_basic(user, "wrong"))
                elapsed = (time.perf_counter() - began) * 1000
                assert r.status_code == 401, (r.status_code, r.text)
                if i >= 5:
                    times[kind].append(elapsed)
    return times


def _report(times: dict[str, list[float]]) -> None:
    for kind, values in times.items():
        q1, median, q3 = statistics.quantiles(values, n=4)
        print(f"{kind:>8}: median {median:6.2f} ms  (quartiles {q1:.2f}-{q3:.2f}, n={len(values)})")
    diff = statistics.median(times["existing"]) - statistics.median(times["unknown"])
    print(f"difference of medians: {diff:.2f} ms")


def _run(dsn: str, tries: int) -> None:
    """Serve Berth on ``dsn``, create user ``timing``, measure and print."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {
        "BERTH_DATABASE_URL": dsn,
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BERTH_ACCESS_LOG": "false",
        "BERTH_LOG_LEVEL": "WARNING",
        "BERTH_AUTH__FAILURES_PER_MINUTE": "100000",
        "BERTH_AUTH__ADDRESS_FAILURES_PER_MINUTE": "100000",
    }
    cmd = [str(BERTH_EXE), "serve", "all", "--host", "127.0.0.1", "--port", str(port)]
    with open(os.environ.get("BENCH_LOG", os.devnull), "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", 90)
        user = {"name": "timing", "password": "s3cret-timing"}
        httpx.post(
            f"{url}/api/users", json=user, auth=RegistryAuth("admin", ADMIN_PASSWORD)
        ).raise_for_status()
        _report(_measure(url, tries))
    finally:
        proc.terminate()
        proc.wait(30)


async def _main(tries: int) -> None:
    async with temporary_database("berth_bench_") as dsn:
        await asyncio.to_thread(_run, dsn, tries)


def main(argv: list[str] | None = None) -> None:
    """Parse ``--tries`` and run the measurement."""
    parser = argparse.ArgumentParser(prog="python -m bench.login_timing", description=__doc__)
    parser.add_argument("--tries", type=int, default=50, help="requests per kind (default 50)")
    asyncio.run(_main(parser.parse_args(argv).tries))


if __name__ == "__main__":
    main()
