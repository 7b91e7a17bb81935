"""Refusals of the domain, in the domain's own terms: no HTTP status, no headers.

Domain code raises these; the edge turns each into its OCI wire error through one table,
``berth_common.http.errors.WIRE`` (status, code, message and headers such as ``Range`` or
``Retry-After``). Errors that are nothing but an OCI error code (``BlobUnknown``,
``NameUnknown``…) stay ``berth_common.errors`` classes, raised where they arise.
docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the domain's refusals; every subclass has a row in ``http.errors.WIRE``."""


class ChunkOutOfOrder(DomainError):
    """An upload chunk does not start where the session's recorded bytes end (or ends before it
    starts); nothing was written.

    Attributes:
        start: the chunk's first byte offset, as the client declared it.
        held: bytes the session holds (where the next chunk must start).

    Source: OCI distribution spec, "Pushing a blob in chunks" (out of order: 416 with the
    session's ``Range``).
    """

    def __init__(self, start: int, held: int) -> None:
        self.start, self.held = start, held
        super().__init__(f"chunk starts at {start}, but the session holds {held} bytes")


class SessionTakenOver(DomainError):
    """Another request took the upload session over (this one's lease expired): this request's
    bytes do not count. ``held``: bytes the session holds as recorded when ours was lost."""

    def __init__(self, held: int) -> None:
        self.held = held
        super().__init__("the upload session was taken over by another request; retry from its Range")


class SessionBusy(DomainError):
    """Another request holds the upload session's lease and did not finish within the wait.
    ``waited``: seconds this request waited."""

    def __init__(self, waited: float) -> None:
        self.waited = waited
        super().__init__(
            f"another request is writing to this upload session (waited {waited:.0f} s); retry later"
        )


class LoginThrottled(DomainError):
    """Too many failed logins: the attempt is refused without checking the password.

    Attributes:
        what: which bucket is empty (``"from this address"``, ``"for this user from this address"``).
        wait_seconds: whole seconds until a failure is allowed again (at least 1).
    """

    def __init__(self, what: str, wait_seconds: int) -> None:
        self.what, self.wait_seconds = what, wait_seconds
        super().__init__(f"too many failed logins {what}; retry in {wait_seconds} s")


class BadCredentials(DomainError):
    """The user name and password (or API key) do not authenticate anyone: unknown, disabled,
    revoked, expired and wrong alike."""

    def __init__(self) -> None:
        super().__init__("invalid username or password")
