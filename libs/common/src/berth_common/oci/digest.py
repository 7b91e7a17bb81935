"""Content digests: ``algorithm ":" encoded``.

Source: OCI image spec v1.1, "Descriptors / Digests"; OCI distribution spec v1.1,
"Content Digests" and "Referrers Tag Schema".

Berth supports the two algorithms the image spec registers: ``sha256`` (64 lowercase hex
characters) and ``sha512`` (128 lowercase hex characters). Anything else, including uppercase
hex, is rejected with :class:`~berth_common.errors.DigestInvalid` so that one piece of content
has exactly one spelling (the digest is used as a storage key and a database key).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from berth_common.errors import DigestInvalid

# The image spec grammar: algorithm-component ([+._-] algorithm-component)* ":" [a-zA-Z0-9=_-]+
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# algorithm -> length of its lowercase hex encoding (registered algorithms only).
_HEX_LENGTH: dict[str, int] = {"sha256": 64, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+")

SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_HEX_LENGTH)
"""Digest algorithms Berth can verify: ``{"sha256", "sha512"}``."""


class Hasher(Protocol):
    """The part of a ``hashlib`` hash object that digests need."""

    @property
    def name(self) -> str: ...

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def _short(value: str, limit: int = 80) -> str:
    """``value`` cut to ``limit`` characters for error messages (digests can be hostile input)."""
    return value if len(value) <= limit else value[:limit] + "..."


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    """A validated content digest, e.g. ``sha256:6c3c62…``; ``str(d)`` gives that form.

    Attributes:
        algorithm: ``"sha256"`` or ``"sha512"``.
        hex: the lowercase hex encoding of the hash (64 or 128 characters).

    Instances are immutable, hashable and ordered (by algorithm, then hex). Build them with
    :meth:`parse`, :meth:`of` or :meth:`from_hasher`; the constructor does not validate.
    Usable as a pydantic field: validates from a string, serialises to one.
    """

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse ``"algorithm:encoded"``.

        Raises:
            DigestInvalid: not a string, breaks the image spec grammar, uses an algorithm other
                than sha256/sha512, or its encoded part is not the right number of lowercase hex
                characters.
        """
        if not isinstance(value, str):
            raise DigestInvalid(f"digest must be a string, got {type(value).__name__}")
        if not _GRAMMAR.fullmatch(value):
            raise DigestInvalid(f"invalid digest {_short(value)!r}: expected algorithm:encoded")
        algorithm, _, encoded = value.partition(":")
        length = _HEX_LENGTH.get(algorithm)
        if length is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {_short(algorithm)!r} (supported: sha256, sha512)"
            )
        if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
            raise DigestInvalid(
                f"invalid {algorithm} digest {_short(value)!r}: expected {length} lowercase hex characters"
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` computed with ``algorithm``.

        Raises:
            DigestInvalid: ``algorithm`` is not supported.
        """
        hasher = _new_hasher(algorithm)
        hasher.update(data)
        return cls.from_hasher(hasher)

    @classmethod
    def from_hasher(cls, hasher: Hasher) -> Digest:
        """The digest of everything fed so far to a ``hashlib`` object (sha256 or sha512).

        Raises:
            DigestInvalid: the hasher's algorithm is not supported.
        """
        if hasher.name not in _HEX_LENGTH:
            raise DigestInvalid(f"unsupported digest algorithm {hasher.name!r}")
        return cls(hasher.name, hasher.hexdigest())

    def new_hasher(self) -> Any:
        """A fresh ``hashlib`` object for this digest's algorithm, to verify streamed content."""
        return _new_hasher(self.algorithm)

    def matches(self, data: bytes) -> bool:
        """True when ``data`` hashes to this digest."""
        return Digest.of(data, self.algorithm) == self

    def referrers_tag(self) -> str:
        """The fallback tag for this subject digest: ``<algorithm[:32]>-<encoded[:64]>``.

        Source: OCI distribution spec v1.1, "Referrers Tag Schema" (our algorithms and hex
        encodings only use characters that tags allow, so no replacement is needed).
        """
        return f"{self.algorithm[:32]}-{self.hex[:64]}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Pydantic v2 hook: accept a :class:`Digest` or a digest string; serialise as a string."""
        from pydantic_core import core_schema

        def validate(value: object) -> Digest:
            if isinstance(value, cls):
                return value
            try:
                return cls.parse(value)  # type: ignore[arg-type]  # parse rejects non-strings
            except DigestInvalid as exc:
                raise ValueError(exc.message) from exc

        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_after_validator_function(validate, core_schema.str_schema()),
            python_schema=core_schema.no_info_plain_validator_function(validate),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def _new_hasher(algorithm: str) -> Any:
    """A new ``hashlib`` object for a supported algorithm; raises DigestInvalid otherwise."""
    if algorithm not in _HEX_LENGTH:
        raise DigestInvalid(f"unsupported digest algorithm {_short(str(algorithm))!r}")
    return hashlib.new(algorithm)
