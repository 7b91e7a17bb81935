"""containerd's ``ctr`` (what Kubernetes nodes pull with) against the registry, with a private
containerd (CRI disabled, ``tests.support.daemons``).

Images are pushed by skopeo from ``oci_layout`` (``--all --preserve-digests`` for the index), then
``ctr images pull --plain-http --user`` (one platform, and ``--all-platforms``) and
``ctr images push --user``; OCI digests must come through unchanged both ways (OCI distribution
spec v1.1, "Pulling manifests"/"Pushing manifests"). See docs/CLIENTS.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.conftest import Registry
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.daemons import Containerd, containerd_daemon, have_daemons

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(have_daemons() is not None, reason=str(have_daemons()))]

ADMIN = f"--user={ADMIN_USER}:{ADMIN_PASSWORD}"
ACCEPT = f"{oci_layout.OCI_MANIFEST}, {oci_layout.OCI_INDEX}"


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    """A private containerd for this module."""
    with containerd_daemon() as daemon:
        yield daemon


def image_row(containerd: Containerd, ref: str) -> tuple[str, str]:
    """``(media type, digest)`` of image ``ref`` in ``ctr images ls``.

    Raises:
        AssertionError: if containerd has no such image.
    """
    for line in containerd.ctr("images", "ls").stdout.splitlines()[1:]:
        cells = line.split()
        if cells and cells[0] == ref:
            return cells[1], cells[2]
    raise AssertionError(f"{ref} not in ctr images ls")


def content(containerd: Containerd) -> set[str]:
    """Digests of every blob in containerd's content store."""
    return set(containerd.ctr("content", "ls", "-q").stdout.split())


def stored_bytes(host: str, repo: str, ref: str) -> bytes:
    """The exact manifest or index bytes the registry serves for ``repo:ref``, as the admin."""
    r = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{ref}",
        headers={"Accept": ACCEPT},
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    return r.content


def layers(layout: Path, digest: str) -> list[str]:
    """Layer digests of the image manifest ``digest`` in ``layout``."""
    return [x["digest"] for x in json.loads(oci_layout.read_blob(layout, digest))["layers"]]


def test_pull_single_platform_keeps_oci_digest(
    registry: Registry, containerd: Containerd, layout: Path
) -> None:
    """``ctr images pull`` of an OCI manifest: the same digest and media type, its layer fetched."""
    repo = registry.new_repo("app")
    skopeo_copy(f"oci:{layout}:v1", docker_ref(registry.host, repo, "v1"))
    pushed = oci_layout.resolve_tag(layout, "v1")["digest"]
    ref = f"{registry.host}/{repo}:v1"
    containerd.ctr("images", "pull", "--plain-http", ADMIN, ref)
    assert image_row(containerd, ref) == (oci_layout.OCI_MANIFEST, pushed)
    assert set(layers(layout, pushed)) <= content(containerd)


def test_pull_all_platforms_then_push_keeps_index_digests(
    registry: Registry, containerd: Containerd, layout: Path
) -> None:
    """``ctr images pull --all-platforms`` of an OCI index fetches both children's layers;
    ``ctr images push --user`` into another feed stores byte-identical index and manifests."""
    repo = registry.new_repo("multi")
    skopeo_copy(
        f"oci:{layout}:multi", docker_ref(registry.host, repo, "multi"), "--all", "--preserve-digests"
    )
    index_digest = oci_layout.resolve_tag(layout, "multi")["digest"]
    children = [m["digest"] for m in json.loads(oci_layout.read_blob(layout, index_digest))["manifests"]]
    ref = f"{registry.host}/{repo}:multi"
    containerd.ctr("images", "pull", "--plain-http", ADMIN, "--all-platforms", ref)
    assert image_row(containerd, ref) == (oci_layout.OCI_INDEX, index_digest)
    assert {d for child in children for d in layers(layout, child)} <= content(containerd)

    target_repo = registry.new_repo("copy")
    target = f"{registry.host}/{target_repo}:multi"
    containerd.ctr("images", "tag", ref, target)
    containerd.ctr("images", "push", "--plain-http", ADMIN, target)
    index = stored_bytes(registry.host, target_repo, "multi")
    assert "sha256:" + hashlib.sha256(index).hexdigest() == index_digest
    for child in children:
        assert stored_bytes(registry.host, target_repo, child) == oci_layout.read_blob(layout, child)


def test_pull_without_credentials_is_refused(
    registry: Registry, containerd: Containerd, layout: Path
) -> None:
    """Without ``--user`` a private feed refuses ``ctr images pull``: the anonymous token lacks pull,
    the 401 challenge says ``insufficient_scope``, and ctr reports "pull access denied"."""
    if registry.server is None:
        pytest.skip("the reference registry runs without auth here")
    repo = registry.new_repo("private")
    skopeo_copy(f"oci:{layout}:v1", docker_ref(registry.host, repo, "v1"))
    refused = containerd.ctr("images", "pull", "--plain-http", f"{registry.host}/{repo}:v1", check=False)
    assert refused.returncode != 0
    assert "pull access denied" in refused.stderr and "insufficient_scope" in refused.stderr, refused.stderr
