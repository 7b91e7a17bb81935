"""Stores that share or nest in one place are refused at startup (docs/CONFIGURATION.md, "Stores").

Blobs are deduplicated and collected per store. With two names for one folder (or bucket and
prefix), feed ``a`` on one and feed ``b`` on the other both stored layer L in the same file;
once ``a`` no longer referenced L, garbage collection of ``a``'s store deleted that file, and
``b``'s image — whose manifest still referenced L — answered 404 "missing from storage".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth_common.settings import StorageSettings
from berth_common.storage import Stores

S3 = {"kind": "s3", "access_key": "k", "secret_key": "s", "endpoint": "http://minio:9000"}


def _stores(**configs: dict[str, Any]) -> Stores:
    return Stores.from_settings({name: StorageSettings.model_validate(c) for name, c in configs.items()})


@pytest.mark.parametrize(
    "configs",
    [
        {"default": {"root": "{tmp}/blobs"}, "other": {"root": "{tmp}/x/../blobs"}},
        {"default": {"root": "{tmp}/blobs"}, "inner": {"root": "{tmp}/blobs/feeds/b"}},
        {
            "one": {**S3, "bucket": "berth"},
            "two": {**S3, "bucket": "berth", "endpoint": "MINIO:9000", "secure": False},
        },
        {
            "one": {**S3, "bucket": "berth", "prefix": "reg"},
            "two": {**S3, "bucket": "berth", "prefix": "reg/a"},
        },
    ],
    ids=["same-folder", "nested-folder", "same-bucket", "nested-prefix"],
)
def test_stores_sharing_a_place_are_refused(tmp_path: Path, configs: dict[str, dict[str, Any]]) -> None:
    configs = {
        n: {k: v.format(tmp=tmp_path) if k == "root" else v for k, v in c.items()} for n, c in configs.items()
    }
    with pytest.raises(ValueError, match="share a place"):
        _stores(**configs)


async def test_stores_in_their_own_places_are_accepted(tmp_path: Path) -> None:
    stores = _stores(
        default={"root": str(tmp_path / "a")},
        fs={"root": str(tmp_path / "b")},
        one={**S3, "bucket": "berth", "prefix": "reg/a"},
        two={**S3, "bucket": "berth", "prefix": "reg/b"},
        three={**S3, "bucket": "other"},
    )
    assert stores.names == ["default", "fs", "one", "three", "two"]
    await stores.close()
