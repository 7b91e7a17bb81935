"""Repository names, tags, references and ``/v2/`` path splitting.

Source: OCI distribution spec v1.1, "Pulling manifests" (the ``<name>`` and ``<reference>``
grammars) and "Endpoints". Berth adds one rule: a repository name has at least two path
components, ``FEED/IMAGE``, where the first one names the feed (ProGet's word for a registry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from berth_common.errors import DigestInvalid, ManifestInvalid, NameInvalid
from berth_common.oci.digest import Digest

MAX_NAME_LENGTH = 255
"""Longest repository name accepted, in characters (the spec's portability limit)."""

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def _short(value: str, limit: int = 80) -> str:
    """``value`` cut to ``limit`` characters for error messages."""
    return value if len(value) <= limit else value[:limit] + "..."


@dataclass(frozen=True, order=True, slots=True)
class RepositoryName:
    """A validated repository name ``feed/image``; ``str(name)`` gives the full name.

    Attributes:
        feed: the first path component (``"dmc"`` in ``"dmc/tools/ubuntu"``).
        image: everything after it, possibly with more slashes (``"tools/ubuntu"``).
        addressed: the name as the client wrote it when it differs (mirror mode,
            ``berth_common.mirror``: ``library/busybox`` for ``hub/library/busybox``);
            ``None`` otherwise. Not part of equality or order.

    Build with :meth:`parse`; the constructor does not validate.
    """

    feed: str
    image: str
    addressed: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.feed}/{self.image}"

    @property
    def url_name(self) -> str:
        """The name in the client's URLs and token scopes: ``addressed``, else ``feed/image``."""
        return self.addressed or f"{self.feed}/{self.image}"

    @classmethod
    def parse(cls, name: str) -> RepositoryName:
        """Validate a repository name and split off its feed.

        Grammar (OCI distribution spec v1.1): ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*`` components
        joined by ``/``, at most 255 characters, plus Berth's rule of two or more components.

        Raises:
            NameInvalid: not a string, too long, breaks the grammar, or has a single component
                (the message then says names are ``FEED/IMAGE``).
        """
        check_name(name)
        feed, sep, image = name.partition("/")
        if not sep:
            raise NameInvalid(
                f"invalid repository name {name!r}: repository names are FEED/IMAGE, the first"
                f" component being a feed (e.g. FEED/{name}; create one with berth feed create FEED);"
                " to serve names without a feed (docker's registry-mirrors, Docker Hub names such as"
                " 'busybox'), configure a default feed: BERTH_DEFAULT_FEED=FEED"
                " (docs/CONFIGURATION.md, default_feed)"
            )
        return cls(feed, image)


def check_name(name: str) -> str:
    """Return ``name`` if it matches the spec's ``<name>`` grammar (any number of components,
    at most ``MAX_NAME_LENGTH`` characters). Raises ``NameInvalid`` otherwise."""
    if not isinstance(name, str):
        raise NameInvalid(f"repository name must be a string, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(
            f"repository name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
        )
    if not _NAME.fullmatch(name):
        raise NameInvalid(
            f"invalid repository name {_short(name)!r}: components must match "
            "[a-z0-9]+((.|_|__|-+)[a-z0-9]+)* and be separated by single slashes"
        )
    return name


def is_valid_tag(tag: str) -> bool:
    """True when ``tag`` matches ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`` (at most 128 characters).

    Source: OCI distribution spec v1.1, "Pulling manifests".
    """
    return isinstance(tag, str) and _TAG.fullmatch(tag) is not None


def parse_reference(ref: str) -> str | Digest:
    """A manifest ``<reference>`` to push to: a :class:`Digest` if it contains ``:``, else a tag.

    Tags never contain ``:``, so the colon decides which grammar applies.

    Raises:
        DigestInvalid: it contains ``:`` but is not a supported digest.
        ManifestInvalid: it is neither a digest nor a valid tag (400; TAG_INVALID is not among
            the spec's error codes).
    """
    if isinstance(ref, str) and ":" in ref:
        return Digest.parse(ref)
    check_tag(ref)
    return ref


def check_tag(tag: str) -> str:
    """Return ``tag`` if it matches the tag grammar. Raises ``ManifestInvalid`` (400) if not."""
    if not is_valid_tag(tag):
        shown = _short(tag) if isinstance(tag, str) else type(tag).__name__
        raise ManifestInvalid(
            f"invalid tag {shown!r}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}", detail={"tag": shown}
        )
    return tag


def find_reference(ref: str) -> str | Digest | None:
    """A manifest ``<reference>`` to look up (GET, HEAD, DELETE), or None when it names nothing.

    OCI distribution spec v1.1.1, "Pulling manifests": ``<reference>`` is a digest or a tag and
    "MUST NOT be in any other format"; a manifest that is not found is ``404``. So a reference
    that is neither a valid tag nor a supported digest names no manifest (the caller answers
    ``404 MANIFEST_UNKNOWN``), exactly as a well-formed one that is absent.
    """
    try:
        return parse_reference(ref)
    except (DigestInvalid, ManifestInvalid):
        return None


def split_v2_path(path: str) -> tuple[str, str, str]:
    """Split the part of a URL path after ``/v2/`` into ``(name, kind, rest)``.

    - ``feed/a/b/manifests/latest`` -> ``("feed/a/b", "manifests", "latest")`` (end-3, 7, 9)
    - ``feed/x/blobs/<digest>`` -> ``("feed/x", "blobs", "<digest>")`` (end-2, 10)
    - ``feed/x/blobs/uploads/`` -> ``("feed/x", "uploads", "")`` (end-4)
    - ``feed/x/blobs/uploads/<id>`` -> ``("feed/x", "uploads", "<id>")`` (end-5, 6)
    - ``feed/x/tags/list`` -> ``("feed/x", "tags", "")`` (end-8)
    - ``feed/x/referrers/<digest>`` -> ``("feed/x", "referrers", "<digest>")`` (end-12)

    The endpoint is recognised from the END of the path (its last occurrence), so repository
    names may themselves contain ``blobs``, ``manifests``, ``uploads``, ``tags`` … as components.
    ``blobs/uploads`` without the trailing slash is read as the upload endpoint too. ``rest`` is
    returned unvalidated (may be empty); ``name`` is only checked to be non-empty: validate it
    with :meth:`RepositoryName.parse` and ``rest`` with :func:`parse_reference` /
    :meth:`Digest.parse`.

    Raises:
        NameInvalid: no endpoint can be recognised or the name part is empty.
    """
    segments = path.split("/") if isinstance(path, str) else []
    kind, cut = _endpoint(segments)
    name = "/".join(segments[:cut])
    if not kind or not name:
        raise NameInvalid(f"cannot find a repository name and endpoint in path {_short(str(path))!r}")
    rest = "" if kind == "tags" else "/".join(segments[cut + 1 :])
    if kind == "uploads":
        rest = "/".join(segments[cut + 2 :])
    return name, kind, rest


def _endpoint(segments: list[str]) -> tuple[str, int]:
    """``(kind, index of the endpoint's first segment)`` for a split path, or ``("", 0)``."""
    n = len(segments)
    if n >= 4 and segments[-3] == "blobs" and segments[-2] == "uploads":
        return "uploads", n - 3
    if n >= 3 and segments[-2] == "blobs" and segments[-1] == "uploads":
        return "uploads", n - 2
    if n >= 3 and segments[-2] == "tags" and segments[-1] == "list":
        return "tags", n - 2
    if n >= 3 and segments[-2] in ("manifests", "blobs", "referrers"):
        return segments[-2], n - 2
    return "", 0
