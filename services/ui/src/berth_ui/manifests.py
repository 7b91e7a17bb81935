"""What the manifest page shows, from the bytes the registry API serves.

OCI image spec v1.1 (image manifest, image index, image config ``config``/``history``) and the
Docker schema 2 equivalents. Only presentation: unexpected shapes show as absent fields, never
as an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.artifact.manifest.v1+json",
    ]
)
IMAGE_CONFIGS = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
MAX_CONFIG = 1024 * 1024  # bytes: larger configs are not fetched for the page


@dataclass
class Descriptor:
    """A layer or child manifest: digest, media type, size and (children) platform."""

    digest: str
    media_type: str
    size: int | None
    platform: str | None = None


@dataclass
class Manifest:
    """A manifest as the page shows it."""

    media_type: str
    size: int | None
    artifact_type: str | None = None
    subject: str | None = None
    config: Descriptor | None = None
    layers: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    annotations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def image_config(self) -> Descriptor | None:
        """The config descriptor when it is an image configuration worth fetching."""
        config = self.config
        if config and config.media_type in IMAGE_CONFIGS and (config.size or 0) <= MAX_CONFIG:
            return config
        return None


def _descriptor(value: Any) -> Descriptor | None:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str):
        return None
    size = value.get("size")
    return Descriptor(
        value["digest"],
        str(value.get("mediaType", "")),
        size if isinstance(size, int) else None,
        _platform(value),
    )


def _platform(value: dict[str, Any]) -> str | None:
    platform = value.get("platform")
    if not isinstance(platform, dict):
        return None
    text = "/".join(
        str(p) for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p
    )
    return text or None


def parse_manifest(body: bytes, content_type: str) -> Manifest:
    """The page's view of manifest ``body`` served with ``content_type``."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    config = _descriptor(doc.get("config"))
    layers = [d for d in map(_descriptor, doc.get("layers") or []) if d]
    children = [d for d in map(_descriptor, doc.get("manifests") or []) if d]
    sizes = [d.size for d in ([config] if config else []) + layers if d.size is not None]
    subject = _descriptor(doc.get("subject"))
    artifact = doc.get("artifactType") or (
        config.media_type if config and config.media_type not in IMAGE_CONFIGS else None
    )
    annotations: dict[str, Any] = doc["annotations"] if isinstance(doc.get("annotations"), dict) else {}
    return Manifest(
        media_type=str(doc.get("mediaType") or content_type.split(";")[0]),
        size=None if children else sum(sizes),
        artifact_type=artifact,
        subject=subject.digest if subject else None,
        config=config,
        layers=layers,
        children=children,
        annotations=sorted((str(k), str(v)) for k, v in annotations.items()),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        return " ".join(json.dumps(v) if " " in str(v) else str(v) for v in value) or None
    return str(value) if value else None


def parse_config(body: bytes) -> dict[str, Any]:
    """An image config's platform, created, entrypoint, cmd, workdir, user, ports, env, labels
    and history (``created_by``, ``created``, ``empty_layer``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    cfg: dict[str, Any] = doc["config"] if isinstance(doc.get("config"), dict) else {}
    labels: dict[str, Any] = cfg["Labels"] if isinstance(cfg.get("Labels"), dict) else {}
    history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
    platform = "/".join(str(p) for p in (doc.get("os"), doc.get("architecture"), doc.get("variant")) if p)
    return {
        "platform": platform or None,
        "created": doc.get("created"),
        "entrypoint": _text(cfg.get("Entrypoint")),
        "cmd": _text(cfg.get("Cmd")),
        "workdir": cfg.get("WorkingDir") or None,
        "user": cfg.get("User") or None,
        "ports": sorted(cfg.get("ExposedPorts") or {}),
        "env": [str(e) for e in cfg.get("Env") or []],
        "labels": sorted((str(k), str(v)) for k, v in labels.items()),
        "history": history,
    }
