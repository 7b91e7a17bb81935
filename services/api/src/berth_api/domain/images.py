"""What a tag list shows of a manifest: its size and, for an index, its platforms.

OCI image spec v1.1 (image manifest ``config``/``layers`` descriptors; image index ``manifests``
with ``platform``) and the Docker schema 2 equivalents. Works on the stored bytes, which the
api service accepted as valid JSON manifests; anything unexpected yields ``None``/``[]``, never
an error (the listing must not fail because one manifest is unusual).
"""

from __future__ import annotations

import json
from typing import Any


def parse(body: bytes) -> dict[str, Any]:
    """The manifest JSON object, or ``{}`` if it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def image_size(manifest: dict[str, Any]) -> int | None:
    """Bytes of an image's config and layers (what a pull downloads), or ``None`` for an index."""
    if "manifests" in manifest:
        return None
    parts = [manifest.get("config"), *(manifest.get("layers") or [])]
    sizes = [p.get("size") for p in parts if isinstance(p, dict)]
    return sum(s for s in sizes if isinstance(s, int))


def children(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The child manifest descriptors of an index (``[]`` for an image)."""
    return [m for m in manifest.get("manifests") or [] if isinstance(m, dict)]


def platform_of(descriptor: dict[str, Any]) -> str | None:
    """``os/architecture[/variant]`` of an index entry; ``None`` for none or ``unknown/unknown``
    (buildx's attestation manifests)."""
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return None
    parts = [platform.get("os"), platform.get("architecture"), platform.get("variant")]
    text = "/".join(str(p) for p in parts if p)
    return None if not text or text == "unknown/unknown" else text


def platforms(manifest: dict[str, Any]) -> list[str]:
    """The platforms an index serves, in its order."""
    return [p for p in (platform_of(m) for m in children(manifest)) if p]
