"""Content descriptors and the JSON field checks that manifest parsing shares.

Source: OCI image spec v1.1, "Content Descriptors" (descriptor.md) and "Image Index"
(platform). Every check failure raises :class:`~berth_common.errors.ManifestInvalid` naming the
offending field (``layers[2].size``), because descriptors only reach Berth inside manifests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from berth_common.errors import DigestInvalid, ManifestInvalid
from berth_common.oci.digest import Digest

MAX_SIZE = 2**63 - 1
"""Largest descriptor ``size``: the image spec's int64."""

# RFC 6838 §4.2 restricted names, as in the image spec's JSON schema (parameters allowed after ';').
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(?:\s*;.*)?",
    re.DOTALL,
)


def invalid(where: str, problem: str) -> ManifestInvalid:
    """A ManifestInvalid saying ``"<where>: <problem>"`` with ``detail={"field": where}``."""
    return ManifestInvalid(f"{where}: {problem}", detail={"field": where})


def is_media_type(value: object) -> bool:
    """True when ``value`` is a string shaped like an RFC 6838 ``type/subtype`` media type."""
    return isinstance(value, str) and _MEDIA_TYPE.fullmatch(value) is not None


def get_str(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """``obj[key]`` checked to be a string; ``None`` when absent (or null) and not ``required``."""
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise invalid(f"{where}{key}", "must be a string" if key in obj else "is required")
    return value


def get_media_type(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """``obj[key]`` checked to be a media type; ``""`` counts as absent when not ``required``."""
    value = get_str(obj, key, where, required=required)
    if value is None or (value == "" and not required):
        return None
    if not is_media_type(value):
        raise invalid(f"{where}{key}", f"{_short(value)!r} is not a media type (type/subtype)")
    return value


def get_annotations(obj: dict[str, Any], where: str) -> dict[str, str]:
    """``obj["annotations"]`` checked to be a string-to-string map; ``{}`` when absent or null."""
    value = obj.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{where}annotations", "must be a map of strings to strings")
    return dict(value)


def get_list(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> list[Any]:
    """``obj[key]`` checked to be a JSON array; ``[]`` when null, or absent and not ``required``.

    A required array may be null: Go's ``encoding/json`` writes a nil slice as ``null`` (what
    ``crane index filter`` pushes as ``"manifests": null``), and Distribution reads it back as
    an empty list. Only a required array that is missing altogether is refused.
    """
    value = obj.get(key)
    if value is None and (key in obj or not required):
        return []
    if not isinstance(value, list):
        raise invalid(f"{where}{key}", "must be an array" if key in obj else "is required")
    return value


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content: what it is, its digest and its size in bytes.

    Attributes:
        media_type: the referenced content's media type (required).
        digest: its digest (required; sha256 or sha512).
        size: its length in bytes, ``0 <= size <= 2**63-1`` (required).
        artifact_type: the artifact's type, if the descriptor says so.
        annotations: string-to-string metadata (``{}`` when absent).
        platform: for index entries, the platform object as sent (``architecture``, ``os`` …).
        urls: where a non-distributable ("foreign") layer can be downloaded from (``[]`` if none).
    """

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None
    urls: list[str] = field(default_factory=list)

    @property
    def is_foreign(self) -> bool:
        """True when the content lives at ``urls`` and need not be in the registry."""
        return bool(self.urls)

    @classmethod
    def from_json(cls, obj: object, where: str = "descriptor") -> Descriptor:
        """Validate one descriptor JSON object; ``where`` names it in error messages.

        Raises:
            ManifestInvalid: not an object, a required field is missing, or a field has the
                wrong type or value (bad digest, negative/huge/non-integer size …).
        """
        if not isinstance(obj, dict):
            raise invalid(where, "must be a descriptor object")
        prefix = f"{where}."
        media_type = get_media_type(obj, "mediaType", prefix, required=True)
        assert media_type is not None
        return cls(
            media_type=media_type,
            digest=_get_digest(obj, prefix),
            size=_get_size(obj, prefix),
            artifact_type=get_media_type(obj, "artifactType", prefix),
            annotations=get_annotations(obj, prefix),
            platform=_get_platform(obj, prefix),
            urls=_get_urls(obj, prefix),
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as OCI JSON (camelCase keys; optional fields only when set)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform
        if self.urls:
            out["urls"] = list(self.urls)
        return out


def _short(value: str, limit: int = 80) -> str:
    """``value`` cut to ``limit`` characters for error messages."""
    return value if len(value) <= limit else value[:limit] + "..."


def _get_digest(obj: dict[str, Any], prefix: str) -> Digest:
    """The required ``digest`` field parsed; DigestInvalid is reported as ManifestInvalid."""
    value = get_str(obj, "digest", prefix, required=True)
    try:
        return Digest.parse(value or "")
    except DigestInvalid as exc:
        raise invalid(f"{prefix}digest", exc.message) from exc


def _get_size(obj: dict[str, Any], prefix: str) -> int:
    """The required ``size`` field: an integer (not a bool or float) in ``[0, 2**63-1]``."""
    value = obj.get("size")
    if "size" not in obj:
        raise invalid(f"{prefix}size", "is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"{prefix}size", "must be an integer")
    if not 0 <= value <= MAX_SIZE:
        raise invalid(f"{prefix}size", f"must be between 0 and {MAX_SIZE}")
    return value


def _get_urls(obj: dict[str, Any], prefix: str) -> list[str]:
    """The optional ``urls`` field: a list of non-empty strings."""
    urls = get_list(obj, "urls", prefix)
    if not all(isinstance(u, str) and u for u in urls):
        raise invalid(f"{prefix}urls", "must be an array of non-empty strings")
    return list(urls)


def _get_platform(obj: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """The optional ``platform`` object; ``architecture``/``os`` must be strings if present,
    ``variant``/``os.version`` strings or null (Go never writes these as null, others may)."""
    value = obj.get("platform")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{prefix}platform", "must be an object")
    for key in ("architecture", "os", "variant", "os.version"):
        optional = key in ("variant", "os.version")
        if key in value and not isinstance(value[key], str) and not (optional and value[key] is None):
            raise invalid(f"{prefix}platform.{key}", "must be a string")
    return dict(value)
