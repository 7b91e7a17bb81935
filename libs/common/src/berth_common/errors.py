"""The one table of OCI error codes and the one renderer of ``{"errors": [...]}`` bodies.

Source: OCI distribution spec v1.1.1, "Error Codes"; Distribution's ``registry/api/errcode``.
Routes raise one of these exceptions; one handler (``berth_common.http.errors``) renders it.
Library exceptions (asyncpg, nats, storage) are mapped to these at the boundary where they
arise, so a client never sees a 500 for bad input.

The spec says a 4XX JSON body's ``code`` "MUST be one of" its fourteen codes
(:data:`SPEC_CODES`); every 4XX class here that the registry API (``/v2/``) can raise carries
one of them, whatever its status (416 uses BLOB_UPLOAD_INVALID or SIZE_INVALID, 413/414/415
MANIFEST_INVALID or UNSUPPORTED). The spec says nothing of 5XX bodies: as Distribution, Berth
sends ``UNKNOWN`` (500) and ``UNAVAILABLE`` (503), which clients already treat as retryable.
``CONFLICT`` (409) belongs to Berth's own admin API only. docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class RegistryError(Exception):
    """Base of every error a client may see.

    Attributes:
        code: the OCI error code, e.g. ``"BLOB_UNKNOWN"``.
        status: the HTTP status that goes with it.
        message: a human sentence; defaults to the spec's description.
        detail: JSON-serialisable extra context (never secrets).
        headers: extra response headers (e.g. ``WWW-Authenticate``, ``Range``).
    """

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "unknown error"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        """The entry of this error in an ``{"errors": [...]}`` body."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


class BlobUnknown(RegistryError):
    """404 BLOB_UNKNOWN: the blob is not known to the repository."""

    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    """400 BLOB_UPLOAD_INVALID: the upload session or its content is not acceptable."""

    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    """404 BLOB_UPLOAD_UNKNOWN: no such upload session (finished, cancelled or expired)."""

    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    """400 DIGEST_INVALID: the digest is malformed, unsupported or does not match the content."""

    code, status, default_message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    """404 MANIFEST_BLOB_UNKNOWN: a manifest references a blob the repository does not have."""

    code, status, default_message = "MANIFEST_BLOB_UNKNOWN", 404, "blob unknown to repository"


class ManifestInvalid(RegistryError):
    """400 MANIFEST_INVALID: the manifest is malformed or fails validation."""

    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    """404 MANIFEST_UNKNOWN: no manifest with that tag or digest in the repository."""

    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown"


class NameInvalid(RegistryError):
    """400 NAME_INVALID: the repository name breaks the grammar (names are ``FEED/IMAGE``)."""

    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    """404 NAME_UNKNOWN: the repository (or its feed) is not known to the registry."""

    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


def feed_unknown(feed: str, repository: str) -> NameUnknown:
    """404 NAME_UNKNOWN for ``repository`` (``FEED/IMAGE``) whose ``feed`` does not exist.

    The one wording shared by the api and blob services: it tells the client how names are
    formed and how a feed is created, and names the repository in ``detail``.
    """
    return NameUnknown(
        f"feed {feed!r} does not exist: repository names are FEED/IMAGE and the feed"
        " must be created first (berth feed create FEED); names without a feed (docker's"
        " registry-mirrors) need a default feed: BERTH_DEFAULT_FEED=FEED",
        detail={"name": repository},
    )


class SizeInvalid(RegistryError):
    """400 SIZE_INVALID: the content length does not match what was declared."""

    code, status, default_message = "SIZE_INVALID", 400, "provided length did not match content length"


class RangeInvalid(BlobUploadInvalid):
    """416 BLOB_UPLOAD_INVALID: an upload chunk's ``Content-Range`` is malformed or out of order.

    Spec "Pushing a blob in chunks": an out-of-order chunk MUST get 416; the session is unchanged.
    """

    status, default_message = 416, "invalid content range"


class RangeNotSatisfiable(SizeInvalid):
    """416 SIZE_INVALID: a blob GET's ``Range`` lies outside the blob (RFC 9110 §15.5.17)."""

    status, default_message = 416, "requested range not satisfiable"


class Unauthorized(RegistryError):
    """401 UNAUTHORIZED: authentication required (comes with a ``WWW-Authenticate`` challenge)."""

    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    """403 DENIED: the caller is authenticated but may not do this."""

    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    """405 UNSUPPORTED: the operation is not supported (e.g. deleting a manifest by tag when disabled)."""

    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class UnsupportedMediaType(RegistryError):
    """415 UNSUPPORTED: the manifest media type is not one the registry accepts."""

    code, status, default_message = "UNSUPPORTED", 415, "unsupported media type"


class PaginationNumberInvalid(Unsupported):
    """400 UNSUPPORTED: ``n`` (tags list, catalogue) is not a non-negative integer."""

    status, default_message = 400, "invalid number of results requested"


class TooManyRequests(RegistryError):
    """429 TOOMANYREQUESTS: the client is rate limited."""

    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class Conflict(RegistryError):
    """409 CONFLICT (Berth admin API): the resource already exists or changed concurrently."""

    code, status, default_message = "CONFLICT", 409, "conflict"


class Unavailable(RegistryError):
    """503 UNAVAILABLE: a backing service (database, storage, bus) is not reachable; retry later."""

    code, status, default_message = "UNAVAILABLE", 503, "service unavailable"


class InternalError(RegistryError):
    """500 UNKNOWN: an unexpected failure; details are logged, never sent to the client."""

    code, status, default_message = "UNKNOWN", 500, "internal error"


SPEC_CODES = frozenset(
    {
        BlobUnknown.code,
        BlobUploadInvalid.code,
        BlobUploadUnknown.code,
        DigestInvalid.code,
        ManifestBlobUnknown.code,
        ManifestInvalid.code,
        ManifestUnknown.code,
        NameInvalid.code,
        NameUnknown.code,
        SizeInvalid.code,
        Unauthorized.code,
        Denied.code,
        Unsupported.code,
        TooManyRequests.code,
    }
)
"""The fourteen codes of the spec's table (code-1 … code-14): the only codes of 4XX ``/v2/`` bodies."""


def error_body(*errors: RegistryError) -> dict[str, list[dict[str, Any]]]:
    """Render errors as the spec's body: ``{"errors": [{"code", "message", "detail"?}, ...]}``."""
    return {"errors": [e.to_json() for e in errors]}
