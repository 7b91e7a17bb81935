"""``berth up --store URL`` (``berth.store_url``): the URL shapes, and that no credential is ever
taken from, or repeated out of, a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.store_url import describe, parse_store_url, store_environment


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "YXp1cmUta2V5")


def test_s3_url() -> None:
    """Bucket, prefix and query options become the default store's settings."""
    settings = parse_store_url(
        "s3://blobs/berth/one?endpoint=http://127.0.0.1:9000&region=eu-west-1&redirect=false"
    )
    assert settings == {
        "kind": "s3", "bucket": "blobs", "prefix": "berth/one", "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-1", "redirect": "false",
    }  # fmt: skip
    assert describe(settings) == "s3://blobs/berth/one at http://127.0.0.1:9000"


def test_azure_and_filesystem_urls(tmp_path: Path) -> None:
    """``azure://ACCOUNT/CONTAINER/PREFIX``; ``file:///PATH`` and a plain path are the filesystem."""
    settings = parse_store_url(
        "azure://devstoreaccount1/blobs/b?endpoint=http://127.0.0.1:10000/devstoreaccount1"
    )
    assert (settings["account_name"], settings["container"], settings["prefix"]) == (
        "devstoreaccount1",
        "blobs",
        "b",
    )
    assert parse_store_url(f"file://{tmp_path}") == {"kind": "filesystem", "root": str(tmp_path.resolve())}
    assert parse_store_url(str(tmp_path / "s")) == {
        "kind": "filesystem",
        "root": str((tmp_path / "s").resolve()),
    }


def test_environment_replaces_every_storage_variable() -> None:
    """The URL is the whole default store: inherited ``BERTH_STORAGE__*`` variables go."""
    env = store_environment("s3://blobs", {"BERTH_STORAGE__ACCESS_KEY_FILE": "/x", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "BERTH_STORAGE__KIND": "s3", "BERTH_STORAGE__BUCKET": "blobs",
                   "BERTH_STORAGE__PREFIX": ""}  # fmt: skip


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://AKIDEXAMPLE:s3cr3t-value@blobs", "credentials do not go into the store URL"),
        # secrets with '/', '#' or '?' (AWS secret keys often hold '/') must not be echoed either
        ("s3://AKIDEXAMPLE:wJalr/s3cr3t-value@blobs?endpoint=http://h:9000", "credentials do not go"),
        ("s3://AKIDEXAMPLE:wJalr#s3cr3t-value@blobs", "credentials do not go"),
        ("s3://AKIDEXAMPLE:wJalr?s3cr3t-value@blobs", "credentials do not go"),
        ("azure://acct/cont?endpoint=https://acct:s3cr3t-value@127.0.0.1:10000", "credentials do not go"),
        ("s3://blobs?endpoint=http://127.0.0.1:99999", "invalid port"),
        ("s3://blobs?secret_key=s3cr3t-value", "secret_key does not go into the store URL"),
        ("s3://blobs?colour=red", "unknown or repeated s3 store option 'colour'"),
        ("s3://", "s3://BUCKET"),
        ("azure://account", "azure://ACCOUNT/CONTAINER"),
        ("gs://blobs", "unknown store scheme 'gs'"),
        ("s3://blobs?redirect=maybe", "redirect must be true or false"),
        ("s3://b", "invalid 'bucket'"),
    ],
)
def test_bad_urls_are_refused_without_repeating_secrets(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_store_url(url)
    assert "s3cr3t-value" not in str(caught.value)


def test_missing_credentials_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked before the server starts, as the driver will check them."""
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY is not set"):
        parse_store_url("s3://blobs?endpoint=http://127.0.0.1:9000")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://key:s3cr3t-value@127.0.0.1:9000", "must not carry credentials"),
        ("key@127.0.0.1:9000", "must not carry credentials"),
        ("http://127.0.0.1:99999", "invalid port"),
        ("127.0.0.1:0", "invalid port"),
        ("127.0.0.1:port", "invalid port"),
    ],
)
def test_an_endpoint_with_credentials_or_a_bad_port_is_refused(endpoint: str, message: str) -> None:
    """The same check for stores from the configuration file, not only ``--store`` (it started
    the embedded servers, then died with a traceback)."""
    from berth_common.storage._options import split_endpoint

    with pytest.raises(ValueError, match=message) as caught:
        split_endpoint(endpoint, None, "endpoint", "s3")
    assert "s3cr3t-value" not in str(caught.value)
