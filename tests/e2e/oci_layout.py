"""A small, daemon-free image builder that writes OCI image layout directories.

Layers are deterministic tar+gzip archives of real files on this machine (fixed mtime, uid, gid
and owner names, sorted entries, gzip without name or time), so the same inputs always give the
same digests. Layouts follow the OCI image spec v1.1, "OCI Image Layout Specification": an
``oci-layout`` file, ``index.json`` and content-addressed ``blobs/sha256/<hex>``; tags are the
``org.opencontainers.image.ref.name`` annotations of ``index.json``, so ``skopeo copy
oci:DIR:TAG ...`` finds them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

FIXED_MTIME = 1_700_000_000  # seconds since the epoch; every tar entry gets this mtime
BUSYBOX = Path("/bin/busybox")
LICENSES = Path("/usr/share/common-licenses")

Descriptor = dict[str, Any]


@dataclass(frozen=True)
class Platform:
    """One child image of a multi-platform index.

    ``files`` are the real paths packed into the image's single layer; ``variant`` is optional
    (e.g. ``"v8"`` for arm64), as in the OCI image index's ``platform`` object.
    """

    architecture: str
    files: Sequence[Path]
    os: str = "linux"
    variant: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def default_platforms() -> list[Platform]:
    """Two platforms with different contents: amd64 = busybox, arm64/v8 = the common licenses."""
    return [
        Platform("amd64", [BUSYBOX]),
        Platform("arm64", [LICENSES], variant="v8"),
    ]


def sha256_digest(data: bytes) -> str:
    """Return the OCI digest ``"sha256:<64 hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: object) -> bytes:
    """Serialise ``obj`` with sorted keys and no whitespace (stable bytes, so stable digests)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def init_layout(layout_dir: Path) -> None:
    """Create ``layout_dir`` as an empty OCI image layout unless it already is one."""
    (layout_dir / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    marker = layout_dir / "oci-layout"
    if not marker.exists():
        marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = layout_dir / "index.json"
    if not index.exists():
        index.write_bytes(canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))


def write_blob(layout_dir: Path, data: bytes, media_type: str) -> Descriptor:
    """Store ``data`` under ``blobs/sha256/`` and return its descriptor (mediaType, digest, size)."""
    digest = sha256_digest(data)
    path = layout_dir / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not path.exists():
        path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def read_blob(layout_dir: Path, digest: str) -> bytes:
    """Return the bytes of blob ``digest`` (``"sha256:..."``) of the layout.

    Raises:
        FileNotFoundError: if the layout has no such blob.
    """
    algorithm, _, hex_part = digest.partition(":")
    return (layout_dir / "blobs" / algorithm / hex_part).read_bytes()


def _walk(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (recursively) and return every path once, parents first, sorted."""
    found: set[Path] = set()
    for path in paths:
        path = path.absolute()
        found.update(p for p in path.parents if p != Path("/"))
        found.add(path)
        if path.is_dir() and not path.is_symlink():
            found.update(path.rglob("*"))
    return sorted(found, key=lambda p: p.parts)


def _tar_entry(tar: tarfile.TarFile, path: Path, *, as_directory: bool) -> None:
    """Add ``path`` (regular file, directory or symlink) with fixed owner and mtime.

    ``as_directory`` writes a plain 0755 directory entry instead of what is on disk: parents
    such as ``/bin`` are symlinks on merged-/usr systems, but must be directories in the image.
    """
    if as_directory:
        info = tarfile.TarInfo(str(path).lstrip("/"))
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info = tar.gettarinfo(str(path), arcname=str(path).lstrip("/"))
        info.mode &= 0o7777
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isfile():
        with path.open("rb") as fh:
            tar.addfile(info, fh)
    else:
        tar.addfile(info)


def make_layer(files: Sequence[Path]) -> tuple[bytes, str]:
    """Pack ``files`` (directories recursively, parents included) into a reproducible layer.

    Returns:
        ``(gzip_bytes, diff_id)`` where ``diff_id`` is the digest of the uncompressed tar
        (OCI image spec, "Layer DiffID").
    """
    given = {p.absolute() for p in files}
    parents = {parent for p in given for parent in p.parents}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(given):
            _tar_entry(tar, path, as_directory=path in parents and path not in given)
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), sha256_digest(tar_bytes)


def _config(platform: Platform, diff_ids: list[str], entrypoint: list[str]) -> dict[str, Any]:
    """The image config (OCI image spec, "Image Configuration") for one platform."""
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Entrypoint": entrypoint, "Labels": dict(platform.labels)},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "tests/e2e/oci_layout.py", "created": "2023-11-14T22:13:20Z"}],
        "created": "2023-11-14T22:13:20Z",
    }
    if platform.variant:
        config["variant"] = platform.variant
    return config


def write_image(layout_dir: Path, platform: Platform, entrypoint: Sequence[str] = ()) -> Descriptor:
    """Write the layer, config and OCI image manifest of one platform's image as blobs.

    Returns:
        The manifest's descriptor (mediaType, digest, size), not yet tagged in ``index.json``.
    """
    init_layout(layout_dir)
    layer_bytes, diff_id = make_layer(platform.files)
    layer = write_blob(layout_dir, layer_bytes, OCI_LAYER_GZIP)
    entry = list(entrypoint) or ["/bin/busybox"]
    config = write_blob(layout_dir, canonical_json(_config(platform, [diff_id], entry)), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    return write_blob(layout_dir, canonical_json(manifest), OCI_MANIFEST)


def tag_descriptor(layout_dir: Path, tag: str, descriptor: Descriptor) -> None:
    """Point ``tag`` at ``descriptor`` in ``index.json`` (replacing an older entry for ``tag``)."""
    init_layout(layout_dir)
    index_path = layout_dir / "index.json"
    index = json.loads(index_path.read_bytes())
    kept = [d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) != tag]
    kept.append({**descriptor, "annotations": {REF_NAME: tag}})
    index["manifests"] = kept
    index_path.write_bytes(canonical_json(index))


def resolve_tag(layout_dir: Path, tag: str) -> Descriptor:
    """Return the descriptor that ``index.json`` names ``tag``.

    Raises:
        KeyError: if the layout has no such tag.
    """
    index = json.loads((layout_dir / "index.json").read_bytes())
    for descriptor in index["manifests"]:
        if descriptor.get("annotations", {}).get(REF_NAME) == tag:
            return dict(descriptor)
    raise KeyError(f"tag {tag!r} not in {layout_dir}/index.json")


def build_image(
    layout_dir: Path,
    tag: str,
    files: Sequence[Path] = (BUSYBOX,),
    arch: str = "amd64",
    *,
    labels: Mapping[str, str] | None = None,
    entrypoint: Sequence[str] = (),
) -> str:
    """Build a one-layer OCI image of ``files`` and tag it ``tag`` in the layout.

    ``labels`` go into the config's ``Labels``: different labels give different manifest
    digests with the same layer.

    Returns:
        The manifest digest, ``"sha256:<hex>"``.
    """
    platform = Platform(arch, list(files), labels=dict(labels or {}))
    descriptor = write_image(layout_dir, platform, entrypoint)
    tag_descriptor(layout_dir, tag, descriptor)
    return str(descriptor["digest"])


def build_index(layout_dir: Path, tag: str, platforms: Sequence[Platform] | None = None) -> str:
    """Build one image per platform, an OCI image index over them, and tag the index ``tag``.

    Each child descriptor carries its ``platform`` (architecture, os, variant) as in the OCI
    image spec, "Image Index".

    Returns:
        The index digest, ``"sha256:<hex>"``.
    """
    children = []
    for platform in platforms or default_platforms():
        descriptor = write_image(layout_dir, platform)
        descriptor["platform"] = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            descriptor["platform"]["variant"] = platform.variant
        children.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    descriptor = write_blob(layout_dir, canonical_json(index), OCI_INDEX)
    tag_descriptor(layout_dir, tag, descriptor)
    return str(descriptor["digest"])
