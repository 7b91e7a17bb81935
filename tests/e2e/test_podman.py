"""podman pulls (and pushes) against the registry, with its storage in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import Podman, docker_ref, inspect, skopeo_copy, timed
from tests.e2e.conftest import Registry

pytestmark = pytest.mark.e2e


def test_podman_pull_of_pushed_image(registry: Registry, layout: Path, podman: Podman) -> None:
    """An image pushed by skopeo is pulled by podman with the same manifest digest."""
    repo = registry.new_repo("podman")
    image = f"{registry.host}/{repo}:v1"
    skopeo_copy(f"oci:{layout}:v1", docker_ref(registry.host, repo, "v1"))

    pulled = timed(podman.pull_cmd(image))
    print(f"\n[timing] {registry.kind} podman pull busybox image: {pulled:.2f}s")

    digest = podman("image", "inspect", "--format", "{{.Digest}}", image).stdout.strip()
    assert digest == oci_layout.resolve_tag(layout, "v1")["digest"]


def test_podman_push_to_new_tag(registry: Registry, layout: Path, podman: Podman) -> None:
    """podman pushes a pulled image under another tag; skopeo then reads it."""
    repo = registry.new_repo("podman")
    skopeo_copy(f"oci:{layout}:v1", docker_ref(registry.host, repo, "v1"))
    podman("pull", "--tls-verify=false", f"{registry.host}/{repo}:v1")

    pushed = timed(
        [
            *podman.base_cmd(),
            "push",
            "--tls-verify=false",
            f"{registry.host}/{repo}:v1",
            f"{registry.host}/{repo}:v2",
        ]
    )
    print(f"\n[timing] {registry.kind} podman push busybox image: {pushed:.2f}s")

    info = inspect(docker_ref(registry.host, repo, "v2"))
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    assert len(info["Layers"]) == 1
