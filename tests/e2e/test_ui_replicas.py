"""The web UI as its own service, twice: sessions hold across UI processes (docs/SECURITY.md).

Two ``berth serve ui`` processes (no database, no NATS: only ``BERTH_UI__API_URL``) in front
of one ``berth up``. A login through the first works on the second (the cookie is all the
state there is), a form rendered by one is accepted by the other (the CSRF token depends only
on the session), and a logout through the second ends the session on the first too (the
refresh token is revoked in the auth service). Shows the remote API client (``ui.api_url``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.support.berth_process import ADMIN_PASSWORD, REPO_ROOT, berth_process
from tests.support.databases import NATS_URL
from tests.support.net import free_port

pytestmark = pytest.mark.e2e
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextlib.contextmanager
def ui_process(workdir: Path, api_url: str, name: str) -> Iterator[str]:
    """``uv run berth serve ui`` on a free port; yields its URL once ``/healthz`` answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env["BERTH_UI__API_URL"] = api_url
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["uv", "run", "berth", "serve", "ui", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:2000]
    return found[1]


def test_sessions_hold_across_ui_processes(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's web UI")
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(scratch_dir, database_url=dsn, nats_url=NATS_URL, stream=stream) as server,
        ui_process(scratch_dir, server.url, "ui-a") as a,
        ui_process(scratch_dir, server.url, "ui-b") as b,
    ):
        server.create_feed("shared")
        browser = httpx.Client(timeout=30)  # cookies of 127.0.0.1 go to both ports, as in a browser
        login = browser.get(f"{a}/ui/login")
        done = browser.post(
            f"{a}/ui/login", data={"csrf": csrf_of(login), "username": "admin", "password": ADMIN_PASSWORD}
        )
        assert done.status_code == 303, done.text
        assert "shared" in browser.get(f"{b}/ui/feeds").text  # the session, on the other process
        form = browser.get(f"{b}/ui/feeds")
        created = browser.post(f"{a}/ui/feeds", data={"csrf": csrf_of(form), "name": "fromb"})
        assert created.status_code == 303 and created.headers["location"] == "/ui/feeds/fromb"
        assert browser.get(f"{a}/ui/feeds/fromb").status_code == 200
        session = browser.cookies["berth_session"]
        out = browser.post(f"{b}/ui/logout", data={"csrf": csrf_of(browser.get(f"{b}/ui/feeds"))})
        assert out.status_code == 303 and "berth_session" not in browser.cookies
        stale = httpx.get(a + "/ui/feeds", cookies={"berth_session": session}, timeout=30)
        assert "Your session has ended" in stale.text and "fromb" not in stale.text
