"""skopeo against the registry: push, pull back, inspect, indexes, Docker types, tags, delete, mount.

Each test pushes with ``skopeo copy`` from an OCI layout built by ``oci_layout`` and checks the
digests the client sees (OCI distribution spec v1.1, "Pushing manifests", "Pulling manifests").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import (
    docker_ref,
    inspect,
    inspect_raw,
    list_tags,
    run,
    skopeo_copy,
    skopeo_copy_cmd,
    timed,
)
from tests.e2e.conftest import Registry

pytestmark = pytest.mark.e2e

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def layer_digests(manifest: bytes) -> list[str]:
    """The layer digests of an image manifest's bytes."""
    return [layer["digest"] for layer in json.loads(manifest)["layers"]]


def test_push_pull_round_trip(registry: Registry, layout: Path, tmp_path: Path) -> None:
    """An OCI image keeps its manifest digest and layer digests through push and pull."""
    repo = registry.new_repo("busybox")
    remote = docker_ref(registry.host, repo, "v1")
    pushed = timed(skopeo_copy_cmd(f"oci:{layout}:v1", remote))
    pulled = timed(skopeo_copy_cmd(remote, f"oci:{tmp_path / 'back'}:v1"))
    print(f"\n[timing] {registry.kind} skopeo push busybox OCI image: {pushed:.2f}s, pull: {pulled:.2f}s")

    original = oci_layout.resolve_tag(layout, "v1")
    back = oci_layout.resolve_tag(tmp_path / "back", "v1")
    assert back["digest"] == original["digest"]
    assert inspect_raw(remote) == oci_layout.read_blob(layout, original["digest"])
    original_layers = layer_digests(oci_layout.read_blob(layout, original["digest"]))
    assert layer_digests(oci_layout.read_blob(tmp_path / "back", back["digest"])) == original_layers

    info = inspect(remote)
    assert info["Digest"] == original["digest"]
    assert info["Layers"] == original_layers
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")


def test_multi_platform_index_round_trip(registry: Registry, layout: Path, tmp_path: Path) -> None:
    """``--all --preserve-digests`` keeps the index digest and both child manifest digests."""
    repo = registry.new_repo("multi")
    remote = docker_ref(registry.host, repo, "multi")
    index_digest = oci_layout.resolve_tag(layout, "multi")["digest"]
    children = [m["digest"] for m in json.loads(oci_layout.read_blob(layout, index_digest))["manifests"]]

    pushed = timed(skopeo_copy_cmd(f"oci:{layout}:multi", remote, "--all", "--preserve-digests"))
    pulled = timed(skopeo_copy_cmd(remote, f"oci:{tmp_path / 'back'}:multi", "--all", "--preserve-digests"))
    print(f"\n[timing] {registry.kind} skopeo push 2-platform index: {pushed:.2f}s, pull: {pulled:.2f}s")

    raw = inspect_raw(remote)
    assert hashlib.sha256(raw).hexdigest() == index_digest.removeprefix("sha256:")
    assert [m["digest"] for m in json.loads(raw)["manifests"]] == children
    back = oci_layout.resolve_tag(tmp_path / "back", "multi")["digest"]
    assert back == index_digest
    for child in children:
        assert oci_layout.read_blob(tmp_path / "back", child) == oci_layout.read_blob(layout, child)
        assert inspect_raw(docker_ref(registry.host, repo, child)) == oci_layout.read_blob(layout, child)


def test_docker_schema2_round_trip(registry: Registry, layout: Path, tmp_path: Path) -> None:
    """``--format v2s2`` stores a Docker schema2 manifest whose bytes and digest survive a pull."""
    repo = registry.new_repo("docker")
    remote = docker_ref(registry.host, repo, "v1")
    skopeo_copy(f"oci:{layout}:v1", remote, "--format", "v2s2")

    raw = inspect_raw(remote)
    assert json.loads(raw)["mediaType"] == DOCKER_MANIFEST
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert digest != oci_layout.resolve_tag(layout, "v1")["digest"]
    assert inspect(remote)["Digest"] == digest

    skopeo_copy(remote, f"dir:{tmp_path / 'back'}")  # dir: keeps the manifest bytes as they are
    assert (tmp_path / "back" / "manifest.json").read_bytes() == raw
    oci_manifest = oci_layout.read_blob(layout, oci_layout.resolve_tag(layout, "v1")["digest"])
    assert layer_digests(raw) == layer_digests(oci_manifest)
    assert inspect_raw(docker_ref(registry.host, repo, digest)) == raw


def test_tags_list_and_delete(registry: Registry, tmp_path: Path) -> None:
    """Three tags on three manifests are listed; deleting one (by digest) leaves the other two."""
    layout = tmp_path / "oci"
    repo = registry.new_repo("tags")
    digests = {}
    for tag in ("v1", "v2", "v3"):
        digests[tag] = oci_layout.build_image(layout, tag, labels={"tag": tag})
        skopeo_copy(f"oci:{layout}:{tag}", docker_ref(registry.host, repo, tag))
    assert list_tags(registry.host, repo) == ["v1", "v2", "v3"]

    run(["skopeo", "delete", "--tls-verify=false", docker_ref(registry.host, repo, "v2")])

    gone = run(
        skopeo_copy_cmd(docker_ref(registry.host, repo, "v2"), f"oci:{tmp_path / 'x'}:v2"), check=False
    )
    assert gone.returncode != 0, f"pull of a deleted tag succeeded:\n{gone.stdout}"
    by_digest = run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", docker_ref(registry.host, repo, digests["v2"])],
        check=False,
    )
    assert by_digest.returncode != 0, "deleted manifest is still served by digest"
    assert list_tags(registry.host, repo) == ["v1", "v3"]
    for tag in ("v1", "v3"):
        assert inspect(docker_ref(registry.host, repo, tag))["Digest"] == digests[tag]


def test_copy_between_repositories_of_a_feed(registry: Registry, layout: Path) -> None:
    """A registry-to-registry copy inside one feed works; on Berth it mounts the blobs."""
    feed = registry.new_feed()
    source = docker_ref(registry.host, f"{feed}/source", "v1")
    target = docker_ref(registry.host, f"{feed}/target", "v1")
    skopeo_copy(f"oci:{layout}:v1", source)
    mounts_before = registry.mount_count()

    copied = timed(skopeo_copy_cmd(source, target))
    print(f"\n[timing] {registry.kind} skopeo copy between repositories: {copied:.2f}s")

    assert inspect_raw(target) == inspect_raw(source)
    assert inspect(target)["Digest"] == oci_layout.resolve_tag(layout, "v1")["digest"]
    mounts_after = registry.mount_count()
    if mounts_before is not None and mounts_after is not None:
        assert mounts_after > mounts_before, "no blob.mounted event: skopeo's cross-repository mount unused"
