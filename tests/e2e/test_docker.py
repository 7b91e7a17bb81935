"""The docker CLI with a real (private) Docker engine against the registry: build, push, pull.

One dockerd per module (``tests.support.daemons``), logged in as the admin. Pins what docker does
that other clients don't: it pushes Docker schema2 manifests even for OCI images, re-compresses
layers it cannot mount, pulls OCI images with its own Accept headers, and builds manifest lists
with ``docker manifest``. Auth cases are in ``test_docker_auth.py``. See docs/CLIENTS.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.conftest import Registry, fresh_name
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER
from tests.support.daemons import DockerDaemon, docker_daemon, have_daemons, scratch_context

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(have_daemons() is not None, reason=str(have_daemons()))]

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = ", ".join([SCHEMA2, MANIFEST_LIST, oci_layout.OCI_MANIFEST, oci_layout.OCI_INDEX])
BUSYBOX_IMAGE = {"/bin/busybox": oci_layout.BUSYBOX, "/usr/share/common-licenses": oci_layout.LICENSES}


@pytest.fixture(scope="module")
def dockerd(registry: Registry) -> Iterator[DockerDaemon]:
    """A private dockerd for this module, logged in to the registry as the admin."""
    with docker_daemon() as daemon:
        daemon.login(registry.host, ADMIN_USER, ADMIN_PASSWORD)
        yield daemon


def stored_manifest(host: str, repo: str, ref: str) -> tuple[str, dict[str, Any]]:
    """``(Content-Type, parsed body)`` of the manifest the registry holds, fetched as the admin."""
    r = httpx.get(
        f"http://{host}/v2/{repo}/manifests/{ref}",
        headers={"Accept": ACCEPT},
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
        timeout=30.0,
    )
    assert r.status_code == 200, r.text
    return r.headers["content-type"], r.json()


def build_busybox(dockerd: DockerDaemon, tmp_path: Path, tag: str) -> str:
    """``docker build`` of FROM scratch + COPY /bin/busybox and the common licenses; the image id."""
    context = scratch_context(tmp_path / "ctx", BUSYBOX_IMAGE, ["/bin/busybox"])
    return dockerd.build(context, tag)


def test_build_push_pull_by_tag_and_digest(registry: Registry, dockerd: DockerDaemon, tmp_path: Path) -> None:
    """A built image pushes as schema2 and pulls back by tag and by digest on a clean daemon."""
    ref = f"{registry.host}/{registry.new_repo('busybox')}"
    image_id = build_busybox(dockerd, tmp_path, f"{ref}:v1")
    digest = dockerd.push(f"{ref}:v1")

    media_type, manifest = stored_manifest(registry.host, ref.split("/", 1)[1], "v1")
    assert (media_type, manifest["mediaType"]) == (SCHEMA2, SCHEMA2)
    assert manifest["config"] == {**manifest["config"], "mediaType": DOCKER_CONFIG, "digest": image_id}
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER, DOCKER_LAYER]

    dockerd.clean()
    dockerd.docker("pull", f"{ref}:v1")
    assert dockerd.image(f"{ref}:v1", "{{.Id}}") == image_id
    assert f"{ref}@{digest}" in dockerd.image(f"{ref}:v1", "{{json .RepoDigests}}")

    dockerd.clean()
    dockerd.docker("pull", f"{ref}@{digest}")
    assert dockerd.image(f"{ref}@{digest}", "{{.Id}}") == image_id
    assert dockerd.image(f"{ref}@{digest}", "{{.Architecture}} {{.Os}}") == "amd64 linux"


def test_pull_oci_image_then_push_converts_to_schema2(
    registry: Registry, dockerd: DockerDaemon, layout: Path
) -> None:
    """docker pulls an OCI manifest pushed by skopeo (its Accept header lists OCI); pushing it back
    gives a schema2 manifest with the same layer: docker mounts it, within the feed and from
    another feed on the same store (feeds on one store share its blobs; before named stores a
    cross-feed mount answered 202 and docker re-compressed the layer)."""
    feed = registry.new_feed()
    oci = f"{registry.host}/{feed}/oci"
    skopeo_copy(f"oci:{layout}:v1", docker_ref(registry.host, f"{feed}/oci", "v1"))
    original = oci_layout.resolve_tag(layout, "v1")
    manifest = json.loads(oci_layout.read_blob(layout, original["digest"]))

    dockerd.clean()
    dockerd.docker("pull", f"{oci}:v1")
    assert dockerd.image(f"{oci}:v1", "{{.Id}}") == manifest["config"]["digest"]
    assert f"{oci}@{original['digest']}" in dockerd.image(f"{oci}:v1", "{{json .RepoDigests}}")

    same_feed = f"{registry.host}/{feed}/copy"
    dockerd.docker("tag", f"{oci}:v1", f"{same_feed}:v1")
    copied = dockerd.push(f"{same_feed}:v1")
    media_type, converted = stored_manifest(registry.host, f"{feed}/copy", "v1")
    assert copied != original["digest"]
    assert (media_type, converted["mediaType"], converted["config"]["mediaType"]) == (
        SCHEMA2,
        SCHEMA2,
        DOCKER_CONFIG,
    )
    assert [x["digest"] for x in converted["layers"]] == [x["digest"] for x in manifest["layers"]]

    other_feed = f"{registry.host}/{registry.new_feed()}/copy"
    dockerd.docker("tag", f"{oci}:v1", f"{other_feed}:v1")
    dockerd.push(f"{other_feed}:v1")
    _, recompressed = stored_manifest(registry.host, other_feed.split("/", 1)[1], "v1")
    assert recompressed["config"]["digest"] == manifest["config"]["digest"]  # same diff_ids
    mounted = [x["digest"] for x in recompressed["layers"]]
    assert mounted == [x["digest"] for x in manifest["layers"]], "docker mounts from the other feed"


def test_multi_platform_manifest_list(registry: Registry, dockerd: DockerDaemon, tmp_path: Path) -> None:
    """``docker manifest create/push --insecure`` of two single-platform pushes, then
    ``docker pull --platform`` picks the right child on a clean daemon."""
    ref = f"{registry.host}/{registry.new_repo('multi')}"
    amd64 = build_busybox(dockerd, tmp_path / "amd64", f"{ref}:amd64")
    context = scratch_context(tmp_path / "arm64", {"/usr/share/common-licenses": oci_layout.LICENSES})
    arm64 = dockerd.build(context, f"{ref}:arm64", platform="linux/arm64")
    assert dockerd.image(f"{ref}:arm64", "{{.Architecture}}") == "arm64"
    children = {"amd64": dockerd.push(f"{ref}:amd64"), "arm64": dockerd.push(f"{ref}:arm64")}

    dockerd.docker("manifest", "create", "--insecure", f"{ref}:latest", f"{ref}:amd64", f"{ref}:arm64")
    index_digest = dockerd.docker("manifest", "push", "--insecure", f"{ref}:latest").stdout.strip()
    media_type, index = stored_manifest(registry.host, ref.split("/", 1)[1], "latest")
    assert (media_type, index["mediaType"]) == (MANIFEST_LIST, MANIFEST_LIST)
    assert {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]} == children

    for arch, image_id in (("arm64", arm64), ("amd64", amd64)):
        dockerd.clean()
        dockerd.docker("pull", "--platform", f"linux/{arch}", f"{ref}:latest")
        assert dockerd.image(f"{ref}:latest", "{{.Architecture}} {{.Id}}") == f"{arch} {image_id}"
        assert f"{ref}@{index_digest}" in dockerd.image(f"{ref}:latest", "{{json .RepoDigests}}")


async def test_push_pull_through_path_routing_proxy(registry_kind: str, tmp_path: Path) -> None:
    """docker login, push and pull through ``berth serve proxy`` in front of the four services."""
    if registry_kind != "berth":
        pytest.skip("the separate-process mode is Berth's")
    from tests.e2e.test_separate_services import fresh_backends, separate_berth

    def round_trip(database_url: str, stream: str) -> None:
        with separate_berth(tmp_path, database_url, stream) as proxy, docker_daemon() as dockerd:
            host = proxy.url.removeprefix("http://")
            feed = fresh_name("dk")
            created = httpx.post(
                f"{proxy.url}/api/feeds",
                json={"name": feed},
                timeout=30.0,
                auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
            )
            assert created.status_code == 201, created.text
            dockerd.login(host, ADMIN_USER, ADMIN_PASSWORD)
            ref = f"{host}/{feed}/busybox"
            image_id = build_busybox(dockerd, tmp_path, f"{ref}:v1")
            digest = dockerd.push(f"{ref}:v1")
            dockerd.clean()
            dockerd.docker("pull", f"{ref}@{digest}")
            assert dockerd.image(f"{ref}@{digest}", "{{.Id}}") == image_id

    async with fresh_backends() as (database_url, stream):
        await asyncio.to_thread(round_trip, database_url, stream)
