"""The one place that renders errors as the OCI ``{"errors": [...]}`` body.

Routes raise ``berth_common.errors.RegistryError`` subclasses, domain code its refusals
(``berth_common.domain_errors``), which the one table ``WIRE`` maps to OCI errors;
request-validation failures,
unknown routes, wrong methods and unexpected exceptions are mapped here too, so a client never
sees an HTML page or a traceback. Backing-service outages (PostgreSQL, NATS, storage) become
``503 UNAVAILABLE``; a request body that stalls (``berth_common.http.bodies``) is a ``400`` that
closes the connection; anything else unexpected is logged and becomes ``500 UNKNOWN``.

A 4XX answer on the registry API (``/v2/``) carries one of the spec's fourteen codes
(``berth_common.errors.SPEC_CODES``): a generic bad request there says BLOB_UPLOAD_INVALID on
upload sessions, MANIFEST_INVALID on manifests and UNSUPPORTED elsewhere (BAD_REQUEST and
NOT_FOUND are for Berth's own ``/api/`` and ``/token``). docs/ARCHITECTURE.md, "Errors".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from berth_common.domain_errors import (
    BadCredentials,
    ChunkOutOfOrder,
    DomainError,
    LoginThrottled,
    SessionBusy,
    SessionTakenOver,
)
from berth_common.errors import (
    BlobUploadInvalid,
    InternalError,
    ManifestInvalid,
    NameInvalid,
    NameUnknown,
    RangeInvalid,
    RegistryError,
    SizeInvalid,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unsupported,
    error_body,
)
from berth_common.http.bodies import BodyStalled
from berth_common.oci.reference import split_v2_path
from berth_common.storage.base import StorageBackendError

log = structlog.get_logger("berth.http")
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="berth", charset="UTF-8"'}  # RFC 7617


def _held(size: int) -> str:
    """The spec's inclusive ``Range`` of a session holding ``size`` bytes (``0-0`` when empty)."""
    return f"0-{max(size - 1, 0)}"


WIRE: dict[type[DomainError], Callable[[Any], RegistryError]] = {
    ChunkOutOfOrder: lambda e: RangeInvalid(str(e), headers={"Range": _held(e.held)}),
    SessionTakenOver: lambda e: TooManyRequests(str(e), headers={"Range": _held(e.held), "Retry-After": "1"}),
    SessionBusy: lambda e: TooManyRequests(str(e), headers={"Retry-After": "1"}),
    LoginThrottled: lambda e: TooManyRequests(str(e), headers={"Retry-After": str(e.wait_seconds)}),
    BadCredentials: lambda e: Unauthorized(str(e), headers=BASIC_CHALLENGE),
}
"""The one table from the domain's refusals to OCI wire errors (status, code, headers):
416 BLOB_UPLOAD_INVALID with the session's ``Range`` for a chunk out of order, 429
TOOMANYREQUESTS with ``Retry-After`` (and ``Range`` after a takeover), 401 UNAUTHORIZED with a
Basic challenge (OCI distribution spec, "Pushing a blob in chunks", "Error Codes"; RFC 7617)."""


def wire_error(exc: DomainError) -> RegistryError:
    """The OCI error ``exc`` is on the wire (the row of its class, or of its nearest base, in
    ``WIRE``); a domain error without a row is a bug: ``500 UNKNOWN`` (and logged)."""
    for cls in type(exc).__mro__:
        to_wire = WIRE.get(cls)
        if to_wire is not None:
            return to_wire(exc)
    log.error("domain_error.unmapped", error=repr(exc))
    return InternalError()


class _NotFound(RegistryError):
    """404 for a path no endpoint serves."""

    code, status, default_message = "NOT_FOUND", 404, "no such endpoint"


class _BadRequest(RegistryError):
    """400 for a request whose parameters do not validate."""

    code, status, default_message = "BAD_REQUEST", 400, "invalid request"


def _bad_request(request: Request, message: str, status: int = 400, detail: object = None) -> RegistryError:
    """A 400 (or ``status``) for ``request``: on ``/v2/`` with a spec code that fits its endpoint."""
    path = request.url.path
    err: RegistryError = _BadRequest(message, detail=detail)
    if path.startswith("/v2/"):
        try:
            kind = split_v2_path(path[len("/v2/") :])[1]
        except NameInvalid:
            kind = ""
        fitting = {"uploads": BlobUploadInvalid, "manifests": ManifestInvalid}.get(kind, Unsupported)
        err = fitting(message, detail=detail)
    err.status = status  # type: ignore[misc]
    return err


def render(request: Request | None, exc: RegistryError) -> Response:
    """The response for ``exc``: JSON body (none for HEAD), its status and headers."""
    headers = {"Docker-Distribution-API-Version": "registry/2.0", **exc.headers}
    if request is not None and request.method == "HEAD":
        return Response(status_code=exc.status, headers=headers)
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return render(request, exc)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return render(request, wire_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, BodyStalled):  # FastAPI wraps errors of reading a body parameter
        return await _body_stalled(request, exc.__cause__)
    if exc.status_code == 405:
        return render(request, Unsupported(f"method {request.method} not allowed here"))
    if exc.status_code == 404:
        if request.url.path.startswith("/v2/"):
            return render(request, NameUnknown("no such registry endpoint; repository names are FEED/IMAGE"))
        return render(request, _NotFound())
    return render(request, _bad_request(request, str(exc.detail), exc.status_code))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    # The message names each bad field and why, so clients that print only the message (the
    # berth CLI, docker, skopeo) say what to change: "invalid request parameters: body.name:
    # String should have at least 1 character".
    reasons = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in detail[:3])
    message = f"invalid request parameters: {reasons}" if reasons else "invalid request parameters"
    return render(request, _bad_request(request, message, detail=detail))


async def _unstorable_text(request: Request, exc: Exception) -> Response:
    """400 for text PostgreSQL cannot hold (a NUL, an unencodable character) from the client.

    Any parameter may carry ``%00`` or ``"\\u0000"``; rather than checking every one before it
    reaches a query, the driver's refusal is mapped here, at the boundary (never a 500).
    """
    return render(
        request,
        _bad_request(
            request,
            "a request value contains a character that cannot be stored (e.g. NUL)",
            detail={"reason": type(exc).__name__},
        ),
    )


# 57xxx operator intervention: shutting down, starting up, crash recovery, admin shutdown.
# StorageBackendError: a blob store unreachable, timed out, throttled or refusing (its drivers
# name no credential in it). TimeoutError: a query past the pool's command_timeout (60 s), e.g.
# waiting on a lock a long commit holds.
_OUTAGES = (
    asyncpg.PostgresConnectionError,
    ConnectionError,
    TimeoutError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,
    StorageBackendError,
)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """503 for a backing service that cannot be reached (logged as one line, no traceback)."""
    log.error("backend.unavailable", path=request.url.path, error=repr(exc))
    return render(request, Unavailable("a backing service is unavailable; retry later"))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that disconnected mid-body: nobody reads the answer; log one line, no traceback."""
    log.info("request.client_disconnected", path=request.url.path, method=request.method)
    return render(
        request, _bad_request(request, "the client disconnected before the request body was complete")
    )


def stalled_error(path: str, seconds: float) -> RegistryError:
    """The OCI error for a body that stalled on ``path``: ``BLOB_UPLOAD_INVALID`` for upload
    sessions, ``MANIFEST_INVALID`` for manifests, else ``SIZE_INVALID`` (fewer bytes came than the
    request declared); all 400, with ``Connection: close`` (the rest of the body is never read)."""
    message = f"the request body stalled: nothing received for {seconds:g} s; the connection is closed"
    kind = ""
    if path.startswith("/v2/"):
        with contextlib.suppress(NameInvalid):
            kind = split_v2_path(path[len("/v2/") :])[1]
    fitting = {"uploads": BlobUploadInvalid, "manifests": ManifestInvalid}.get(kind, SizeInvalid)
    return fitting(message, headers={"Connection": "close"})


async def _body_stalled(request: Request, exc: Exception) -> Response:
    """400 for a client that stopped sending its body (``berth_common.http.bodies``)."""
    assert isinstance(exc, BodyStalled)
    log.info("request.body_stalled", path=request.url.path, method=request.method, seconds=exc.seconds)
    return render(request, stalled_error(request.url.path, exc.seconds))


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, _OUTAGES):
        return await _unavailable(request, exc)
    log.exception("request.failed", path=request.url.path, method=request.method)
    return render(request, InternalError())


def install_error_handlers(app: FastAPI) -> None:
    """Register the renderers on ``app`` (every service and the all-in-one app)."""
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(BodyStalled, _body_stalled)
    for outage in _OUTAGES:  # handled here, not by the catch-all that re-raises to the server
        app.add_exception_handler(outage, _unavailable)
    for text_error in (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError):
        app.add_exception_handler(text_error, _unstorable_text)
    app.add_exception_handler(Exception, _unexpected)
