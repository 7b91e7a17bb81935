"""The admin CLI as a new user meets it (issue 13 §2): the real ``berth`` command, run from a
folder of its own against a real ``berth up`` — grants listed and revoked by id, ``berth login``
and where the CLI finds Berth, passwords never on the command line, key rotation and refresh
tokens, errors as one line."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e.berth_cli import Shell
from tests.e2e.conftest import fresh_name, scratch_database, scratch_stream, target_kind
from tests.support.berth_process import ADMIN_PASSWORD, BerthProcess, berth_process
from tests.support.databases import NATS_URL
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthProcess]:
    if target_kind() != "berth":
        pytest.skip("Berth's CLI")
    with (
        scratch_database() as dsn,
        scratch_stream() as stream,
        berth_process(
            tmp_path_factory.mktemp("cli"), database_url=dsn, nats_url=NATS_URL, stream=stream
        ) as up,
    ):
        yield up


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    """A user in an empty folder (not the data dir) with an empty config home."""
    (tmp_path / "somewhere").mkdir()
    return Shell(cwd=tmp_path / "somewhere", config=tmp_path / "config")


def as_admin(server: BerthProcess) -> dict[str, str]:
    return {"BERTH_URL": server.url, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD}


def rows(table: str) -> list[list[str]]:
    """The data rows of a printed table (cells are separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[1:] if line.strip()]


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def new_user(shell: Shell, server: BerthProcess, password: str = "a-fine-password") -> str:
    name = fresh_name("u")
    shell.run("user", "add", name, "--password-stdin", stdin=password, env=as_admin(server))
    return name


def test_grant_list_shows_the_ids_revoke_takes(server: BerthProcess, shell: Shell) -> None:
    shell.env = as_admin(server)
    feed, user = fresh_name("f"), new_user(shell, server)
    shell.run("feed", "create", feed)
    granted = shell.run("grant", f"user:{user}", "view", "--feed", feed).stdout  # the form from before
    rule_id = granted.split()[1].rstrip(":")
    shell.run("grant", "add", "everyone", "view", "--feed", feed, "--deny")
    listed = rows(shell.run("grant", "list", "--feed", feed).stdout)
    assert [rule_id, f"user:{user}", "view", feed, "grant"] in listed, listed
    assert any(r[1:] == ["everyone", "view", feed, "deny"] for r in listed), listed
    assert any(r[1:] == ["user:admin", "admin", "all feeds", "grant"] for r in listed), listed  # applies too
    theirs = rows(shell.run("grant", "list", "--principal", f"user:{user}").stdout)
    assert theirs == [[rule_id, f"user:{user}", "view", feed, "grant"]]
    assert (
        shell.run("revoke", f"{rule_id}:").stdout.strip() == f"rule {rule_id} removed"
    )  # as grant prints it
    assert rule_id not in shell.run("grant", "list").stdout
    missing = shell.run("revoke", rule_id, ok=False)
    assert missing.returncode == 1
    assert one_line_error(missing.stderr) == f"berth: NAME_UNKNOWN: rule '{rule_id}' does not exist"


def test_login_keeps_a_refresh_token_that_later_commands_use(server: BerthProcess, shell: Shell) -> None:
    done = shell.run("login", server.url, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert f"logged in to {server.url} as admin" in done.stdout
    stored = shell.config / "berth" / "logins.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert ADMIN_PASSWORD not in stored.read_text()
    assert json.loads(stored.read_text())["logins"][server.url]["refresh_token"].startswith("br_")
    assert rows(shell.run("feed", "list").stdout) is not None  # no BERTH_URL, no password: the login
    active = rows(shell.run("auth", "tokens", "list", "--user", "admin").stdout)
    logout = shell.run("logout")
    assert logout.stdout.strip() == f"logged out of {server.url} (its refresh token is revoked)"
    assert server.url not in json.loads(stored.read_text())["logins"]
    left = rows(shell.run("auth", "tokens", "list", "--user", "admin", env=as_admin(server)).stdout)
    assert len(left) == len(active) - 1, (active, left)
    after = shell.run("feed", "list", ok=False)
    assert after.returncode == 2 and "berth login" in one_line_error(after.stderr)


def test_where_the_cli_finds_berth(server: BerthProcess, shell: Shell, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    shell.run("login", server.url, "-u", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    env_first = shell.run("feed", "list", env={"BERTH_URL": closed}, ok=False)
    message = one_line_error(env_first.stderr)
    assert env_first.returncode == 2 and f"cannot reach Berth at {closed} (BERTH_URL)" in message
    assert "--url URL, BERTH_URL=URL or berth login URL" in message
    flag = shell.run("feed", "list", "--url", closed, ok=False)  # after the command, too
    assert f"cannot reach Berth at {closed} (--url)" in flag.stderr
    password = {"BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    shell.run("logout")
    by_dir = shell.run("--data-dir", str(server.data_dir), "feed", "list", env=password)
    assert by_dir.stdout.startswith("NAME")
    here = Shell(cwd=server.data_dir.parent, config=shell.config, env=password)  # ./berth-data
    assert here.run("feed", "list").stdout.startswith("NAME")


def test_unreachable_berth_says_which_url_and_what_to_do(shell: Shell) -> None:
    done = shell.run("user", "list", ok=False)
    message = one_line_error(done.stderr)
    assert done.returncode == 2 and "http://127.0.0.1:5000" in message and "berth login" in message


def test_passwords_never_on_the_command_line(server: BerthProcess, shell: Shell) -> None:
    shell.env = as_admin(server)
    name = fresh_name("u")
    short = shell.run("user", "add", name, "--password-stdin", stdin="short", ok=False)
    assert short.returncode == 1 and "PASSWORD_INVALID" in one_line_error(short.stderr)
    assert "at least 8" in short.stderr
    no_terminal = shell.run("user", "add", name, ok=False)
    assert no_terminal.returncode == 2
    assert "no terminal to ask for the password: pipe it in with --password-stdin" in no_terminal.stderr
    secret = "typed-on-a-terminal"
    code, shown = shell.run_on_terminal(
        ["user", "add", name],
        [(f"Password for {name}: ", secret), ("Repeat for confirmation: ", secret)],
    )
    assert code == 0 and f"user {name} created" in shown and secret not in shown, shown
    user = Shell(cwd=shell.cwd, config=shell.config)
    code, shown = user.run_on_terminal(
        ["login", server.url],
        [("Username [admin]: ", name), (f"Password of {name} at {server.url}: ", secret)],
    )
    assert code == 0 and secret not in shown, shown
    assert f"note: {name} does not hold the Admin privilege" in shown


def test_rotate_key_and_revoke_refresh_tokens(server: BerthProcess, shell: Shell, tmp_path: Path) -> None:
    rotated = shell.run("auth", "rotate-key", env=as_admin(server)).stdout
    kid = rotated.split()[2]
    assert kid in {k["kid"] for k in httpx.get(f"{server.url}/auth/jwks.json").json()["keys"]}
    name = new_user(shell, server, "their-password")
    theirs = Shell(cwd=shell.cwd, config=tmp_path / "their-config")
    theirs.run("login", server.url, "-u", name, "--password-stdin", stdin="their-password")
    refused = theirs.run("user", "list", ok=False)  # admin only (a viewer may list feeds)
    assert refused.returncode == 1
    assert f"insufficient privileges: {name} lacks the Admin privilege" in one_line_error(refused.stderr)
    listed = rows(shell.run("auth", "tokens", "list", "--user", name, env=as_admin(server)).stdout)
    assert len(listed) == 1 and listed[0][1] == name
    revoked = shell.run("auth", "tokens", "revoke", "--user", name, env=as_admin(server)).stdout
    assert revoked.strip() == f"1 refresh token(s) of {name} revoked"
    dead = theirs.run("user", "list", ok=False)
    assert f"the login stored for {server.url} was refused" in one_line_error(dead.stderr)
    assert f"log in again with berth login {server.url}" in dead.stderr
    unknown = shell.run("auth", "tokens", "revoke", "t-nosuch", env=as_admin(server), ok=False)
    assert unknown.returncode == 1 and "NAME_UNKNOWN" in one_line_error(unknown.stderr)
    neither = shell.run("auth", "tokens", "revoke", env=as_admin(server), ok=False)
    assert neither.returncode == 2 and "name one token ID or --user USER" in neither.stderr


def test_gc_run_prints_its_summary_without_log_lines(server: BerthProcess, shell: Shell) -> None:
    """Found through ``--data-dir`` (its run.json names the database), from another folder."""
    feed, data = fresh_name("gc"), b"unreferenced layer " + fresh_name().encode()
    shell.run("feed", "create", feed, env=as_admin(server))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    pushed = httpx.post(f"{server.url}/v2/{feed}/x/blobs/uploads/?digest={digest}", content=data, auth=auth)
    assert pushed.status_code == 201, pushed.text
    done = shell.run("--data-dir", str(server.data_dir), "gc", "run", "--feed", feed, "--grace-seconds", "0",
                     env=as_admin(server))  # fmt: skip
    table, summary = done.stdout.rsplit("\n", 2)[0], done.stdout.rsplit("\n", 2)[1]
    assert [line.split() for line in table.splitlines()] == [
        ["FEED", "LINKS", "BLOBS", "BLOB", "BYTES", "SESSIONS", "SESSION", "BYTES"],
        [feed, "1", "1", str(len(data)), "0", "0"],
    ], done.stdout
    assert summary == (
        "unlink 1 links, delete 1 blobs, expire 0 upload sessions, swept 0 orphaned files,"
        f" freed {len(data)} bytes"
    )
    assert done.stderr == ""
    listed = shell.run("gc", "runs", "--limit", "1", env=as_admin(server)).stdout
    assert rows(listed)[0][1:4] == ["succeeded", "api", feed], listed
