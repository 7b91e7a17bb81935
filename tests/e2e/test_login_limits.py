"""Failed-login limits hold across processes (issue 9 §4): two ``berth serve all`` processes on
one database share the per-address and the per-(user, address) buckets, so alternating between
them (as a load balancer or ``--workers 2`` would) does not double the allowance."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.databases import temporary_database
from tests.support.serve_process import ServeProcess, start, stop, wait_ready

pytestmark = pytest.mark.e2e
PER_USER, PER_ADDRESS = 3, 6


def _login(process: ServeProcess, user: str, password: str) -> httpx.Response:
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return httpx.get(
        f"{process.url}/token",
        params={"service": "berth"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )


@contextlib.contextmanager
def _two_processes(workdir: Path, database_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {
        "BERTH_DATABASE_URL": database_url,
        "BERTH_STORAGE__ROOT": str(workdir / "storage"),
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "BERTH_AUTH__FAILURES_PER_MINUTE": str(PER_USER),
        "BERTH_AUTH__ADDRESS_FAILURES_PER_MINUTE": str(PER_ADDRESS),
    }
    processes = [start(name, ["all"], env, workdir) for name in ("one", "two")]
    try:
        wait_ready(processes, "/healthz")
        yield processes[0], processes[1]
    except BaseException:
        print("\n".join(p.log() for p in processes))
        raise
    finally:
        stop(processes)


def _alternate(workdir: Path, database_url: str) -> None:
    with _two_processes(workdir, database_url) as (one, two):
        assert _login(one, ADMIN_USER, ADMIN_PASSWORD).status_code == 200
        # per (user, address): 3 failures in all, whichever process saw them
        assert [_login(p, ADMIN_USER, "wrong").status_code for p in (one, two, one)] == [401] * 3
        refused = _login(two, ADMIN_USER, ADMIN_PASSWORD)
        assert refused.status_code == 429, refused.text
        assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert int(refused.headers["Retry-After"]) >= 1
        # per address: 6 failures in all, any user names, whichever process saw them
        assert [_login(p, f"u{i}", "x").status_code for i, p in enumerate((two, one, two))] == [401] * 3
        last = _login(one, "someone", "x")
        assert last.status_code == 429, last.text
        assert "too many failed logins from 127.0.0.1" in last.json()["errors"][0]["message"]


async def test_two_processes_share_the_login_limits(tmp_path: Path) -> None:
    async with temporary_database("berth_limits_") as database_url:
        await asyncio.to_thread(_alternate, tmp_path, database_url)
