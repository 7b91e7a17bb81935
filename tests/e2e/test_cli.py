"""The ``berth`` command line against a running ``berth up``: help, feeds, events, rebuild.

The admin commands (grants, logins, passwords, tokens) are ``test_cli_admin.py``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e.berth_cli import Shell
from tests.e2e.conftest import scratch_database, scratch_stream, target_kind
from tests.support.berth_process import ADMIN_PASSWORD, berth_process
from tests.support.databases import NATS_URL

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def berth(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``berth ARGS`` from an empty folder with only the ``BERTH_*`` variables in ``env``."""
    with tempfile.TemporaryDirectory(prefix="berth-cli-") as folder:
        shell = Shell(cwd=Path(folder), config=Path(folder) / "config", env=env or {})
        return shell.run(*args, ok=ok)


@pytest.mark.parametrize(
    "command",
    [[], ["up"], ["serve"], ["feed"], ["feed", "create"], ["events", "tail"], ["projections", "rebuild"]],
)
def test_help_everywhere(command: list[str]) -> None:
    """The installed command answers (every command's help: ``tests/unit/test_cli_help.py``)."""
    assert "Usage" in berth(*command, "--help").stdout


def test_feed_commands_events_and_rebuild(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    workdir = scratch_dir
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(workdir, database_url=dsn, nats_url=NATS_URL, stream=stream) as server,
    ):
        env = {
            "BERTH_URL": server.url,
            "BERTH_DATABASE_URL": dsn,
            "BERTH_NATS_URL": NATS_URL,
            "BERTH_NATS_STREAM": stream,
            "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        berth("feed", "create", "clitest", "--public", "--description", "from the CLI", env=env)
        assert "clitest" in berth("feed", "list", env=env).stdout
        again = berth("feed", "create", "clitest", env=env, ok=False)
        assert again.returncode == 1 and "CONFLICT" in again.stderr
        bad = berth("feed", "create", "Bad Name", env=env, ok=False)
        assert bad.returncode == 1 and "NAME_INVALID" in bad.stderr
        berth("feed", "delete", "clitest", env=env)
        assert "clitest" not in berth("feed", "list", env=env).stdout
        tail = berth("events", "tail", "--last", "0", env=env).stdout
        lines = [line for line in tail.splitlines() if line.strip()]
        types = [line.split()[2] for line in lines]
        assert [t for t in types if t.startswith("feed.")] == ["feed.created", "feed.deleted"], tail
        rebuilt = berth("projections", "rebuild", env=env).stdout
        assert "api: 2 events applied" in rebuilt
        done = berth("gc", "run", "--grace-seconds", "0", env=env).stdout
        assert "delete 0 blobs" in done and "freed 0 bytes" in done, done
        nowhere = berth("gc", "run", "--feed", "nosuch", env=env, ok=False)
        assert nowhere.returncode == 1 and "NAME_UNKNOWN" in nowhere.stderr


def test_serve_without_database_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    done = subprocess.run(
        ["uv", "run", "--frozen", "berth", "serve", "api"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "BERTH_DATABASE_URL is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_on_a_taken_port_fails_before_starting_anything(scratch_dir: Path) -> None:
    """No "Berth is running", no embedded services, no admin created: one clear line."""
    import socket

    workdir = scratch_dir
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = berth("up", "--port", str(port), "--data-dir", str(workdir / "data"), ok=False)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Berth is running" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "data" / "postgres").exists()


def test_second_up_on_the_same_data_dir_is_one_clear_line(scratch_dir: Path) -> None:
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    workdir = scratch_dir
    with berth_process(workdir, database_url=None, nats_url=None, stream=None) as server:
        done = berth("up", "--port", "0", "--data-dir", str(server.data_dir), ok=False)
    assert done.returncode == 1
    assert "is in use by another berth process" in done.stderr
    assert "Traceback" not in done.stderr


def test_up_announces_only_once_listening_and_names_its_data_dir(scratch_dir: Path) -> None:
    """ "Berth is running" comes when the port answers (scripts wait for that line), and the next
    steps it prints carry ``BERTH_DATA_DIR`` for a data dir other than the default."""
    import signal
    import time

    import httpx

    from tests.support.net import free_port

    workdir = scratch_dir
    port = free_port()
    log_path = workdir / "up.log"
    with scratch_database() as dsn, scratch_stream() as stream, log_path.open("wb") as log:
        env = {
            **os.environ,
            "BERTH_DATABASE_URL": dsn,
            "BERTH_NATS_URL": NATS_URL,
            "BERTH_NATS_STREAM": stream,
            "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        proc = subprocess.Popen(
            [
                "uv",
                "run",
                "--frozen",
                "berth",
                "up",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
                "--data-dir",
                str(workdir / "data"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while "Berth is running" not in log_path.read_text(errors="replace"):
                assert proc.poll() is None, log_path.read_text(errors="replace")
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.02)
            r = httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5.0)  # no ConnectError
            assert r.status_code == 401
            text = log_path.read_text(errors="replace")
            assert f"Berth is running at http://127.0.0.1:{port}" in text  # not 0.0.0.0
            assert f"export BERTH_DATA_DIR={workdir / 'data'}" in text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_feed_sparse_option(scratch_dir: Path) -> None:
    """``berth feed create --allow-sparse``, ``feed list`` shows it, ``feed update --no-sparse``."""
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(scratch_dir, database_url=dsn, nats_url=NATS_URL, stream=stream) as server,
    ):
        env = {"BERTH_URL": server.url, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
        berth("feed", "create", "mirror", "--allow-sparse", env=env)
        berth("feed", "create", "plain", env=env)
        listed = [
            line.replace("│", " ").split() for line in berth("feed", "list", env=env).stdout.splitlines()
        ]
        rows = {cells[0]: cells[2] for cells in listed if cells[:1] in (["mirror"], ["plain"])}
        assert rows == {"mirror": "yes", "plain": "no"}, rows
        assert (
            "feed mirror updated"
            in berth("feed", "update", "mirror", "--no-sparse", "--public", env=env).stdout
        )
        answer = httpx.get(f"{server.url}/api/feeds", auth=RegistryAuth("admin", ADMIN_PASSWORD))
        feeds = {f["name"]: f for f in answer.json()}
        assert (feeds["mirror"]["allow_sparse"], feeds["mirror"]["public"]) == (False, True)
        assert berth("feed", "update", "nosuch", "--allow-sparse", env=env, ok=False).returncode == 1


def test_gc_run_purges_idle_upload_sessions_at_once(scratch_dir: Path) -> None:
    """``berth gc run --purge-age AGE`` expires upload sessions idle longer than AGE in the same
    run (an operator who needs the space now) and says how many sessions and bytes went."""
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    import httpx

    from berth.token_auth import RegistryAuth
    from tests.support.berth_process import ADMIN_USER

    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(scratch_dir, database_url=dsn, nats_url=NATS_URL, stream=stream) as server,
    ):
        server.create_feed("purge")
        auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
        started = httpx.post(f"{server.url}/v2/purge/img/blobs/uploads/", auth=auth)
        session = started.headers["location"]
        patched = httpx.patch(f"{server.url}{session}", content=b"x" * 1000, auth=auth)
        assert patched.status_code == 202, patched.text
        env = {"BERTH_URL": server.url, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
        kept = berth("gc", "run", "--purge-age", "1h", env=env).stdout
        assert "expire 0 upload sessions" in kept and "freed 0 bytes" in kept, kept
        assert httpx.get(f"{server.url}{session}", auth=auth).status_code == 204
        uploads = server.data_dir / "storage" / "uploads"  # the session's bytes, in its folder
        assert [sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in uploads.iterdir()] == [
            1000
        ]
        purged = berth("gc", "run", "--purge-age", "0", env=env).stdout
        assert "expire 1 upload sessions" in purged and "freed 1000 bytes" in purged, purged
        assert ["purge", "0", "0", "0", "1", "1000"] in [line.split() for line in purged.splitlines()], purged
        gone = httpx.get(f"{server.url}{session}", auth=auth)
        assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        assert not uploads.exists() or not any(uploads.iterdir())  # the bytes are gone
        bad = berth("gc", "run", "--purge-age", "soon", env=env, ok=False)
        assert bad.returncode == 2 and "is not an age" in bad.stderr and "Traceback" not in bad.stderr
