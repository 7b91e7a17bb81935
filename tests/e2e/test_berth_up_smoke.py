"""``berth up`` in embedded mode: no BERTH_DATABASE_URL/NATS env, state kept across a restart.

Only for Berth (skipped when BERTH_E2E_TARGET=reference): the server starts its own PostgreSQL
and NATS under the data directory; an image pushed before a restart is served after it.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, inspect, skopeo_copy, skopeo_copy_cmd, timed
from tests.e2e.conftest import Kind, fresh_name
from tests.support.berth_process import berth_process

pytestmark = pytest.mark.e2e


def _children_of(data_dir: Path) -> list[str]:
    """Command lines of live processes (postgres, nats-server) that use ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_embedded_berth_keeps_images_across_restart(
    registry_kind: Kind, layout: Path, scratch_dir: Path
) -> None:
    """Push to an embedded-mode server, stop it, start it on the same data dir, pull the image.

    Stopping leaves no child behind (embedded PostgreSQL and NATS are stopped with it).
    """
    if registry_kind != "berth":
        pytest.skip("berth up smoke test runs only against Berth")
    # Not pytest's tmp_path: pytest resets /tmp/pytest-of-root to 0700, which the embedded
    # PostgreSQL (running as its own system user when we are root) cannot traverse.
    tmp_path = scratch_dir
    data_dir = tmp_path / "data"
    repo = f"{fresh_name()}/smoke"
    digest = oci_layout.resolve_tag(layout, "v1")["digest"]

    with berth_process(tmp_path, database_url=None, nats_url=None, stream=None, data_dir=data_dir) as server:
        server.create_feed(repo.split("/")[0])
        skopeo_copy(f"oci:{layout}:v1", docker_ref(server.host, repo, "v1"))
        assert inspect(docker_ref(server.host, repo, "v1"))["Digest"] == digest

    with berth_process(tmp_path, database_url=None, nats_url=None, stream=None, data_dir=data_dir) as server:
        remote = docker_ref(server.host, repo, "v1")
        pulled = timed(skopeo_copy_cmd(remote, f"oci:{tmp_path / 'back'}:v1"))
        print(f"\n[timing] embedded berth pull after restart: {pulled:.2f}s")
        assert oci_layout.resolve_tag(tmp_path / "back", "v1")["digest"] == digest
        assert inspect(remote)["Digest"] == digest
    assert _children_of(data_dir) == []
