"""Storage layout paths and the driver factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth_common.storage import (
    FilesystemDriver,
    StorageDriver,
    blob_path,
    create_driver,
    upload_data_path,
    upload_prefix,
    validate_path,
)

HEX = "ab" + "0" * 62


def test_blob_path() -> None:
    assert blob_path(f"sha256:{HEX}") == f"blobs/sha256/ab/{HEX}"
    assert blob_path("sha512:cdef") == "blobs/sha512/cd/cdef"
    validate_path(blob_path(f"sha256:{HEX}"))


@pytest.mark.parametrize("bad", ["", HEX, "sha256:", "sha256:a", "SHA256:ab", "sha256:ab/cd", "sha256:../x"])
def test_blob_path_rejects_bad_digests(bad: str) -> None:
    with pytest.raises(ValueError):
        blob_path(bad)


def test_upload_paths() -> None:
    uid = "0f6a3c1e-7b2d-4c1a-9e8f-123456789abc"
    assert upload_prefix(uid) == f"uploads/{uid}"
    assert upload_data_path(uid) == f"uploads/{uid}/data"
    for bad in ("", "a/b", "..", "x y"):
        with pytest.raises(ValueError):
            upload_data_path(bad)


def test_create_filesystem_driver(tmp_path: Path) -> None:
    driver = create_driver("filesystem", root=str(tmp_path / "s"))
    assert isinstance(driver, FilesystemDriver) and isinstance(driver, StorageDriver)
    assert driver.name == "filesystem" and driver.root == tmp_path / "s"


@pytest.mark.parametrize(("kind", "options"), [("nope", {}), ("filesystem", {}), ("filesystem", {"x": 1})])
def test_create_driver_rejects_bad_config(kind: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        create_driver(kind, **options)
