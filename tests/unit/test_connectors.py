"""Connectors without I/O: URLs and upstream names, password encryption, the CLI's parsing, the
error a failed pull answers, and the tee that streams a fetch to its client."""

from __future__ import annotations

import asyncio
import io

import pytest
import typer
from cryptography.fernet import Fernet

from berth.cli_support import CliError
from berth.connector_cli import parse_duration, upstream_password
from berth_blob.domain.tee import StreamCut, Tee
from berth_common.connectors.model import Connector, UpstreamUrl
from berth_common.connectors.secrets import SecretBox, SecretsUnavailable
from berth_common.connectors.upstream import UpstreamError, client_error
from berth_common.errors import ManifestUnknown, TooManyRequests, Unavailable


@pytest.mark.parametrize(
    ("url", "registry", "prefix"),
    [
        ("https://registry-1.docker.io", "https://registry-1.docker.io", ""),
        ("https://docker.io/", "https://registry-1.docker.io", ""),
        ("http://127.0.0.1:5000/mirror/", "http://127.0.0.1:5000", "mirror"),
        ("https://berth.example/dmc/team", "https://berth.example", "dmc/team"),
        ("http://[::1]:5000", "http://[::1]:5000", ""),
    ],
)
def test_upstream_urls(url: str, registry: str, prefix: str) -> None:
    parsed = UpstreamUrl.parse(url)
    assert (parsed.registry, parsed.prefix) == (registry, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.org",
        "https://",
        "https://u:p@x.org",
        "https://x.org/?q=1",
        "https://x.org/Up",
        "https://x.org:99999",
    ],
)
def test_bad_upstream_urls(url: str) -> None:
    with pytest.raises(ValueError):
        UpstreamUrl.parse(url)


def test_upstream_names_apply_the_namespace_to_single_names_then_the_prefix() -> None:
    hub = Connector("id", "hub", 1, "https://registry-1.docker.io", namespace="library")
    assert hub.upstream_name("busybox") == "library/busybox"
    assert hub.upstream_name("bitnami/redis") == "bitnami/redis"
    assert hub.origin("busybox") == "https://registry-1.docker.io/library/busybox"
    chained = Connector("id", "edge", 1, "http://berth.example/mid")
    assert chained.upstream_name("tools/app") == "mid/tools/app"


def test_the_password_token_is_left_out_of_repr() -> None:
    c = Connector("id", "hub", 1, "https://x.org", username="bot", password_encrypted="gAAAA-secret-token")
    assert "gAAAA" not in repr(c) and "bot" in repr(c)


def test_secret_box_round_trip_and_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt("pw")
    assert token != "pw" and SecretBox([old]).decrypt(token) == "pw"
    rotated = SecretBox([new, old])
    assert rotated.decrypt(token) == "pw"
    assert SecretBox([new]).decrypt(rotated.encrypt("pw2")) == "pw2"
    with pytest.raises(SecretsUnavailable):
        SecretBox([new]).decrypt(token)
    with pytest.raises(SecretsUnavailable, match=r"connectors\.key"):
        SecretBox([]).encrypt("pw")
    with pytest.raises(SecretsUnavailable):
        SecretBox(["not-a-key"])


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("300", 300), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations() -> None:
    for text in ("", "5x", "-1m", "m"):
        with pytest.raises(typer.BadParameter):
            parse_duration(text)


def test_the_password_comes_from_stdin_never_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert upstream_password("bot", True) == "s3cret"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert upstream_password(None, False) is None
    with pytest.raises(CliError):
        upstream_password("bot", False)  # not a terminal: --password-stdin is needed
    with pytest.raises(CliError):
        upstream_password(None, True)


def test_the_error_of_a_failed_pull() -> None:
    unknown = ManifestUnknown("manifest v1 is unknown", detail={"reference": "v1"})
    gone = UpstreamError("not_found", "a answered 404")
    down = UpstreamError("unavailable", "b is unreachable")
    busy = UpstreamError("rate_limited", "c answered 429", 429, "30")
    assert isinstance(client_error(unknown, [gone]), ManifestUnknown)
    assert client_error(unknown, [gone]).detail == {"reference": "v1", "connectors": ["a answered 404"]}
    limited = client_error(unknown, [gone, busy])
    assert isinstance(limited, TooManyRequests) and limited.headers == {"Retry-After": "30"}
    worst = client_error(unknown, [busy, down])
    assert isinstance(worst, Unavailable) and "b is unreachable" in worst.message


async def _feed(tee: Tee, chunks: list[bytes], error: BaseException | None = None) -> None:
    for chunk in chunks:
        await tee.offer(chunk)
    await tee.offer(None)
    await asyncio.sleep(0)
    tee.finish(error)


async def _collect(tee: Tee, offset: int, count: int | None) -> list[bytes]:
    return [piece async for piece in tee.window(offset, count)]


async def test_the_tee_holds_back_the_last_piece_until_the_fetch_is_recorded() -> None:
    tee = Tee(idle_timeout=5)
    reader = asyncio.ensure_future(_collect(tee, 0, 6))
    await tee.offer(b"abc")
    await tee.offer(b"def")
    await tee.offer(None)
    await asyncio.sleep(0.01)
    assert not reader.done()  # "def" waits for the verdict
    tee.finish()
    assert await reader == [b"abc", b"def"]


async def test_the_tee_serves_a_range_and_cuts_on_failure() -> None:
    tee = Tee(idle_timeout=5)
    reader = asyncio.ensure_future(_collect(tee, 2, 3))
    await _feed(tee, [b"abc", b"def", b"ghi"])
    assert b"".join(await reader) == b"cde"
    failing = Tee(idle_timeout=5)
    cut = asyncio.ensure_future(_collect(failing, 0, None))
    await _feed(failing, [b"abc", b"def"], ValueError("digest mismatch"))
    with pytest.raises(StreamCut, match="digest mismatch"):
        await cut


async def test_a_stalled_client_does_not_hold_the_fetch() -> None:
    tee = Tee(idle_timeout=0.01)
    for _ in range(20):  # more than the buffer, nobody reading: offers return, the client is let go
        await tee.offer(b"x" * 10)
    assert not tee.listening
