"""An OCI artifact with a custom artifact type pushed and pulled with the ``oras`` Python client.

The artifact type is carried as the config media type (OCI image spec v1.1, "Guidelines for
artifact usage"), which every registry since OCI distribution v1.0 stores as-is.
"""

from __future__ import annotations

import os
from pathlib import Path

import oras.client
import pytest

from tests.e2e.conftest import Registry
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.e2e

ARTIFACT_TYPE = "application/vnd.berth.e2e.config.v1+json"
FILE_TYPE = "application/vnd.berth.e2e.file.v1"


def test_oras_artifact_round_trip(registry: Registry, tmp_path: Path) -> None:
    """The pulled file has the pushed bytes; the manifest keeps the custom media types."""
    repo = registry.new_repo("artifact")
    target = f"{registry.host}/{repo}:art"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    config = tmp_path / "config.json"
    config.write_text('{"purpose": "berth e2e"}')

    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    if registry.kind == "berth":
        client.auth.set_basic_auth(ADMIN_USER, ADMIN_PASSWORD)
    client.push(
        target=target,
        files=[f"{payload}:{FILE_TYPE}"],
        manifest_config=f"{config}:{ARTIFACT_TYPE}",
        disable_path_validation=True,
        quiet=True,
    )
    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == ARTIFACT_TYPE
    assert [layer["mediaType"] for layer in manifest["layers"]] == [FILE_TYPE]

    out = tmp_path / "out"
    files = client.pull(target=target, outdir=str(out))
    assert [Path(f).name for f in files] == ["payload.bin"]
    assert Path(files[0]).read_bytes() == payload.read_bytes()
