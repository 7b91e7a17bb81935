"""``create_driver`` options of the S3 and Azure drivers: clear errors, credentials from the
option, a file or the environment, and credentials never in a repr, an error or a log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from berth_common.storage import create_driver
from berth_common.storage.azure import AzureDriver
from berth_common.storage.s3 import S3Driver
from tests.drivers.suite import chunks_of, read_all
from tests.support.stores import AzureServer, S3Server

SECRET = "s3cr3t-VALUE-never-shown"
S3_BASE = {"bucket": "berth-blobs", "access_key": "AKIDEXAMPLE", "secret_key": SECRET}
AZ_BASE = {"account_name": "acct1", "account_key": SECRET, "container": "blobs"}


def s3(**options: Any) -> S3Driver:
    driver = create_driver("s3", **options)
    assert isinstance(driver, S3Driver)
    return driver


def azure(**options: Any) -> AzureDriver:
    driver = create_driver("azure", **options)
    assert isinstance(driver, AzureDriver)
    return driver


def test_s3_defaults_and_endpoints() -> None:
    settings = s3(**S3_BASE).settings
    assert (settings.endpoint, settings.secure, settings.region, settings.prefix) == (
        "s3.amazonaws.com", True, "us-east-1", "",
    )  # fmt: skip
    assert (settings.public_endpoint, settings.public_secure) == ("s3.amazonaws.com", True)
    custom = s3(**S3_BASE, endpoint="http://minio:9000", public_endpoint="https://s3.example", prefix="a/b/")
    assert (custom.settings.endpoint, custom.settings.secure, custom.settings.prefix) == (
        "minio:9000",
        False,
        "a/b/",
    )
    assert (custom.settings.public_endpoint, custom.settings.public_secure) == ("s3.example", True)
    assert s3(**S3_BASE, endpoint="minio:9000", secure="false").settings.secure is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"access_key": "a", "secret_key": "b"}, "'bucket'"),
        ({**S3_BASE, "bucket": "ab"}, "invalid 'bucket'"),
        ({**S3_BASE, "bucket": "Upper"}, "invalid 'bucket'"),
        ({**S3_BASE, "colour": "blue"}, "unknown s3 storage options: ['colour']"),
        ({**S3_BASE, "endpoint": "https://minio:9000", "secure": False}, "contradicts 'secure'"),
        ({**S3_BASE, "endpoint": "http://minio:9000/path"}, "without a path"),
        ({**S3_BASE, "endpoint": "ftp://minio"}, "http:// or https://"),
        ({**S3_BASE, "secure": "maybe"}, "true or false"),
        ({**S3_BASE, "prefix": "../up"}, "invalid 'prefix'"),
        ({**S3_BASE, "max_connections": 0}, "between 1 and 1024"),
        ({**S3_BASE, "multipart_copy_threshold": 6 * 1024**3}, "multipart_copy_threshold"),
        ({**S3_BASE, "secret_key_file": "/x"}, "only one of secret_key / secret_key_file"),
    ],
)
def test_s3_bad_options(options: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as error:
        create_driver("s3", **options)
    assert SECRET not in str(error.value)


def test_credentials_from_files_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret").write_text(f"  {SECRET}\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROM-ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("MY_SECRET", "named-env-secret")
    default = s3(bucket="berth-blobs").settings
    assert (default.access_key.reveal(), default.secret_key.reveal()) == ("FROM-ENV", "env-secret")
    from_file = s3(bucket="berth-blobs", secret_key_file=str(tmp_path / "secret")).settings
    assert from_file.secret_key.reveal() == SECRET
    named = s3(bucket="berth-blobs", secret_key_env="MY_SECRET").settings
    assert named.secret_key.reveal() == "named-env-secret"
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY is not set"):
        s3(bucket="berth-blobs")
    with pytest.raises(ValueError, match="cannot read secret_key_file"):
        s3(bucket="berth-blobs", secret_key_file=str(tmp_path / "missing"))
    monkeypatch.setenv("AZURE_STORAGE_KEY", "azure-env-key")
    assert azure(account_name="acct1", container="blobs").settings.account_key.reveal() == "azure-env-key"
    key_file = azure(account_name="acct1", container="blobs", account_key_file=str(tmp_path / "secret"))
    assert key_file.settings.account_key.reveal() == SECRET


def test_azure_defaults_and_bad_options() -> None:
    settings = azure(**AZ_BASE).settings
    assert settings.endpoint == settings.public_endpoint == "https://acct1.blob.core.windows.net"
    local = azure(**AZ_BASE, endpoint="http://127.0.0.1:10000/devstoreaccount1/").settings
    assert local.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    bad: list[dict[str, Any]] = [
        {k: v for k, v in AZ_BASE.items() if k != "container"},
        {k: v for k, v in AZ_BASE.items() if k != "account_name"},
        {**AZ_BASE, "account_name": "no-dash"},
        {**AZ_BASE, "container": "x"},
        {**AZ_BASE, "endpoint": "acct1.blob.core.windows.net"},
        {**AZ_BASE, "sync_copy_limit": 512 * 1024 * 1024},
        {**AZ_BASE, "bucket": "s3-word"},
    ]
    for options in bad:
        with pytest.raises(ValueError) as error:
            create_driver("azure", **options)
        assert SECRET not in str(error.value)
    with pytest.raises(ValueError, match="unknown storage driver 'gcs'"):
        create_driver("gcs")


def test_credentials_are_never_shown() -> None:
    for driver in (s3(**S3_BASE), azure(**AZ_BASE)):
        for text in (repr(driver), str(driver), repr(driver.settings), str(driver.settings)):
            assert SECRET not in text
    assert (
        repr(s3(**S3_BASE).settings.secret_key)
        == str(azure(**AZ_BASE).settings.account_key)
        == "Secret('***')"
    )


async def test_no_log_line_shows_a_credential(
    s3_server: S3Server, azure_server: AzureServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG (minio, urllib3, azure-core's HTTP logging, aiohttp) while each
    driver writes, reads, signs a URL and fails: no record holds a key."""
    bucket, container = s3_server.new_bucket(), await azure_server.new_container()
    drivers = [
        (create_driver("s3", **s3_server.options(bucket)), s3_server.secret_key),
        (create_driver("azure", **azure_server.options(container)), azure_server.account_key),
    ]
    with caplog.at_level(logging.DEBUG):
        for driver, _ in drivers:
            await driver.write("a/b", chunks_of(b"data"))
            assert await read_all(driver, "a/b") == b"data"
            await driver.url_for("a/b")
            await driver.delete("a")
            await driver.close()
    assert caplog.records, "nothing was logged at all: the check would prove nothing"
    for _, secret in drivers:
        assert not [r for r in caplog.records if secret in r.getMessage()]
