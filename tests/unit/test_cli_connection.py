"""Where the CLI finds Berth and whom it calls as (``berth.client``), and the stored logins file
(``berth.logins``): the order of the sources, the file's permissions, no password in it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from berth import logins
from berth.cli_support import CliError
from berth.client import DEFAULT_URL, Connection, credentials
from berth.runfile import RunInfo


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh config home and working folder; no BERTH_* variables of the caller."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("BERTH_URL", "BERTH_DATA_DIR", "BERTH_ADMIN_PASSWORD", "BERTH_AUTH__ADMIN_USER"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")


def login(url: str, user: str = "admin", token: str = "br_secret") -> logins.StoredLogin:
    return logins.StoredLogin(logins.normalise_url(url), user, token, f"{url}/token", "berth")


def run_file(data_dir: Path, url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    RunInfo(url=url, database_url="postgresql://x/y", nats_url="nats://x", pid=1).write(data_dir)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("http://Berth.Example:5000/", "http://berth.example:5000"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("HTTPS://r.example/Prefix", "https://r.example/Prefix"),
    ],
)
def test_urls_are_normalised(given: str, normal: str) -> None:
    assert logins.normalise_url(given) == normal


def test_the_logins_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    logins.store(login("http://a.example"))
    path = tmp_path / "config" / "berth" / "logins.json"
    assert logins.logins_file() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["current"] == "http://a.example"
    assert data["logins"]["http://a.example"] == {
        "username": "admin",
        "refresh_token": "br_secret",
        "realm": "http://a.example/token",
        "service": "berth",
    }


def test_a_wider_file_is_narrowed_on_the_next_write(tmp_path: Path) -> None:
    logins.store(login("http://a.example"))
    logins.logins_file().chmod(0o644)
    logins.store(login("http://b.example"))
    assert stat.S_IMODE(logins.logins_file().stat().st_mode) == 0o600


def test_forget_moves_current_to_the_latest_other_login() -> None:
    logins.store(login("http://a.example"))
    logins.store(login("http://b.example"))
    assert logins.current() == login("http://b.example")
    assert logins.forget("http://b.example/") == login("http://b.example")
    assert logins.current() == login("http://a.example")
    assert logins.forget("http://b.example") is None
    logins.forget("http://a.example")
    assert logins.current() is None


def test_target_order_url_then_data_dir_then_login_then_local_run_file(tmp_path: Path) -> None:
    run_file(Path("berth-data"), "http://local:5000")
    assert Connection().target().url == "http://local:5000"  # 4. ./berth-data/run.json
    logins.store(login("http://stored.example"))
    stored = Connection().target()  # 3. the current login beats ./berth-data
    assert (stored.url, stored.login) == ("http://stored.example", login("http://stored.example"))
    assert "logins.json" in stored.source
    run_file(tmp_path / "other", "http://other:6000")
    assert Connection(data_dir=tmp_path / "other").target().url == "http://other:6000"  # 2.
    flag = Connection(url="http://flag.example/", data_dir=tmp_path / "other").target()  # 1.
    assert (flag.url, flag.source, flag.login) == ("http://flag.example", "--url", None)
    env = Connection(url="http://stored.example", url_source="BERTH_URL").target()
    assert env.source == "BERTH_URL" and env.login == login("http://stored.example")


def test_default_target_and_missing_run_file(tmp_path: Path) -> None:
    assert Connection().target().url == DEFAULT_URL
    with pytest.raises(CliError) as missing:
        Connection(data_dir=tmp_path / "nothing").target()
    assert missing.value.exit_code == 2
    assert "run.json does not exist" in missing.value.message and "berth login URL" in missing.value.message


def test_credentials_environment_password_then_stored_login(monkeypatch: pytest.MonkeyPatch) -> None:
    logins.store(login("http://stored.example", user="alice", token="br_alice"))
    target = Connection().target()
    auth = credentials(target)
    assert (auth.refresh_token, auth.username, auth.basic) == ("br_alice", "alice", None)
    monkeypatch.setenv("BERTH_ADMIN_PASSWORD", "pw-from-env")
    monkeypatch.setenv("BERTH_AUTH__ADMIN_USER", "root")
    explicit = credentials(target)
    assert explicit.refresh_token is None and explicit.username == "root" and explicit.basic
