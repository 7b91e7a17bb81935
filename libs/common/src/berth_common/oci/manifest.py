"""Manifest parsing: bytes + Content-Type -> a validated, resolved :class:`ParsedManifest`.

Sources: OCI distribution spec v1.1, "Pushing Manifests", "Pushing Manifests with Subject",
"Listing Referrers"; OCI image spec v1.1, "Image Manifest", "Image Index", "Content
Descriptors"; Docker "Image Manifest Version 2, Schema 2"; CVE-2021-41190 (ambiguous
manifest/index documents).

Parsing never re-serialises: the registry stores and serves the bytes it was given. Checks are
structural; whether referenced blobs/manifests exist is the caller's business.

Media type resolution (in order):

1. the body's ``mediaType`` field, if present;
2. otherwise the ``Content-Type`` header without parameters (umoci and other tools omit
   ``mediaType``); ``application/json`` and ``application/octet-stream`` say nothing and are
   ignored;
3. otherwise inferred from the shape: ``manifests`` -> OCI index, ``config`` + ``layers`` ->
   OCI image manifest (Docker schema 2 always carries ``mediaType``).

Both given and different -> ``ManifestInvalid`` (the spec: clients MUST send the body's
``mediaType`` as ``Content-Type``).

Unsupported media types: Docker schema 1 and anything that is not one of
:data:`~berth_common.oci.mediatypes.MANIFEST_MEDIA_TYPES` raise ``UnsupportedMediaType``
(``415 UNSUPPORTED``). Distribution 2.8 answers ``400 MANIFEST_INVALID`` in these cases (it falls
back to a schema 1 parser that then fails); both stop every client's push, and 415 with a
message naming the type tells the user what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from berth_common.errors import ManifestInvalid, UnsupportedMediaType
from berth_common.oci import mediatypes as mt
from berth_common.oci.descriptor import (
    Descriptor,
    get_annotations,
    get_list,
    get_media_type,
    get_str,
    invalid,
)
from berth_common.oci.digest import Digest

__all__ = ["MAX_MANIFEST_BYTES", "Descriptor", "ParsedManifest", "parse_manifest"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Manifest size limit callers should enforce (413) before parsing: 4 MiB, the spec's minimum."""

_MAX_DEPTH = 64  # JSON nesting deeper than this is not a manifest


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """What a registry needs to know about a manifest (image manifest or index).

    Attributes:
        media_type: the resolved media type (one of ``MANIFEST_MEDIA_TYPES``).
        config: the config descriptor (image manifests), ``None`` for indexes.
        layers: layer descriptors in order (image manifests), ``[]`` for indexes.
        manifests: child manifest descriptors (indexes), ``[]`` for image manifests.
        subject: the manifest this one refers to (referrers API), if any.
        artifact_type: the type the referrers API reports: ``artifactType`` if set, else (image
            manifests only) ``config.mediaType``; ``None`` for an index without one.
        annotations: the manifest's own annotations (``{}`` if none).
    """

    media_type: str
    config: Descriptor | None = None
    layers: list[Descriptor] = field(default_factory=list)
    manifests: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or Docker manifest list."""
        return self.media_type in mt.INDEX_MEDIA_TYPES

    @property
    def blob_references(self) -> list[Digest]:
        """Blobs the repository must hold: config, then layers, minus foreign layers (``urls``).

        Duplicates are dropped, first occurrence wins.
        """
        descriptors = ([self.config] if self.config else []) + [d for d in self.layers if not d.is_foreign]
        return list(dict.fromkeys(d.digest for d in descriptors))

    @property
    def manifest_references(self) -> list[Digest]:
        """Child manifests an index references (duplicates dropped); ``[]`` for image manifests."""
        return list(dict.fromkeys(d.digest for d in self.manifests))


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a pushed manifest and resolve its media type (see the module docstring).

    Args:
        body: the exact bytes of the PUT request (UTF-8 JSON).
        content_type: the request's ``Content-Type`` header, parameters allowed, or ``None``.

    Raises:
        ManifestInvalid: empty body, not UTF-8, not JSON, not an object, too deeply nested,
            ``mediaType`` disagrees with ``Content-Type``, type cannot be determined,
            ``schemaVersion`` is not 2, or a required field is missing, ill-typed or invalid
            (descriptor digests, sizes, media types, annotations).
        UnsupportedMediaType: Docker schema 1, or a media type that is not a manifest type.
    """
    doc = _load_object(body)
    media_type = _resolve_media_type(doc, content_type)
    _check_schema_version(doc)
    if media_type in mt.INDEX_MEDIA_TYPES:
        return _parse_index(doc, media_type)
    return _parse_image_manifest(doc, media_type)


def _load_object(body: bytes) -> dict[str, Any]:
    """Decode strict UTF-8 JSON (no NaN/Infinity) and require a top-level object."""
    if not body or not body.strip():
        raise ManifestInvalid("manifest body is empty")
    try:
        text = bytes(body).decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ManifestInvalid(f"manifest is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    except RecursionError as exc:
        raise ManifestInvalid("manifest JSON is nested too deeply") from exc
    except ValueError as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"manifest must be a JSON object, got {_json_type(doc)}")
    _check_values(doc, 0)
    return doc


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not allowed in JSON")


def _check_values(value: Any, depth: int) -> None:
    """Reject nesting deeper than 64 and strings with NUL or lone surrogates (unstorable)."""
    if depth > _MAX_DEPTH:
        raise ManifestInvalid("manifest JSON is nested too deeply")
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            raise ManifestInvalid("manifest contains a NUL character or an unpaired surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, depth + 1)
            _check_values(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_values(item, depth + 1)


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _resolve_media_type(doc: dict[str, Any], content_type: str | None) -> str:
    """Body ``mediaType``, else Content-Type, else inferred; mismatch -> ManifestInvalid."""
    declared = get_str(doc, "mediaType", "") or None
    header = mt.base_media_type(content_type)
    if header in mt.GENERIC_CONTENT_TYPES:
        header = ""
    if declared is not None and header and declared.lower() != header:
        raise ManifestInvalid(
            f"manifest mediaType {declared!r} does not match Content-Type {header!r}",
            detail={"mediaType": declared, "contentType": header},
        )
    media_type = declared or header or _infer_media_type(doc)
    if media_type in mt.SCHEMA1_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Docker schema 1 manifests ({media_type}) are not supported; "
            "push a Docker schema 2 or OCI manifest instead"
        )
    if media_type not in mt.MANIFEST_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"unsupported manifest media type {media_type[:100]!r}; supported: "
            + ", ".join(sorted(mt.MANIFEST_MEDIA_TYPES))
        )
    return media_type


def _infer_media_type(doc: dict[str, Any]) -> str:
    """The media type of an unlabelled manifest, from its fields."""
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    version = doc.get("schemaVersion")
    if "fsLayers" in doc or (type(version) is int and version == 1):
        return mt.DOCKER_MANIFEST_V1
    raise ManifestInvalid(
        "cannot determine the manifest media type: set mediaType in the manifest and the Content-Type header"
    )


def _check_schema_version(doc: dict[str, Any]) -> None:
    """``schemaVersion`` must be present and the integer 2."""
    version = doc.get("schemaVersion")
    if "schemaVersion" not in doc:
        raise invalid("schemaVersion", "is required")
    if isinstance(version, bool) or not isinstance(version, int) or version != 2:
        raise invalid("schemaVersion", f"must be 2, got {json.dumps(version)[:40]}")


def _parse_image_manifest(doc: dict[str, Any], media_type: str) -> ParsedManifest:
    """An OCI image manifest or Docker schema 2 manifest: ``config`` + ``layers`` required."""
    if "manifests" in doc:
        raise invalid("manifests", f"not allowed in {media_type} (this looks like an index)")
    if "config" not in doc:
        raise invalid("config", "is required")
    config = Descriptor.from_json(doc["config"], "config")
    raw_layers = get_list(doc, "layers", "", required=True)
    layers = [Descriptor.from_json(d, f"layers[{i}]") for i, d in enumerate(raw_layers)]
    artifact_type = get_media_type(doc, "artifactType", "")
    return ParsedManifest(
        media_type=media_type,
        config=config,
        layers=layers,
        subject=_subject(doc),
        artifact_type=artifact_type or config.media_type,
        annotations=get_annotations(doc, ""),
    )


def _parse_index(doc: dict[str, Any], media_type: str) -> ParsedManifest:
    """An OCI image index or Docker manifest list: ``manifests`` required."""
    for key in ("config", "layers"):
        if key in doc:
            raise invalid(key, f"not allowed in {media_type} (this looks like an image manifest)")
    children = get_list(doc, "manifests", "", required=True)
    return ParsedManifest(
        media_type=media_type,
        manifests=[Descriptor.from_json(d, f"manifests[{i}]") for i, d in enumerate(children)],
        subject=_subject(doc),
        artifact_type=get_media_type(doc, "artifactType", ""),
        annotations=get_annotations(doc, ""),
    )


def _subject(doc: dict[str, Any]) -> Descriptor | None:
    """The optional ``subject`` descriptor (null counts as absent)."""
    value = doc.get("subject")
    return None if value is None else Descriptor.from_json(value, "subject")
