"""The domain refuses in its own terms; one table at the edge makes OCI wire errors of them
(``berth_common.http.errors.WIRE``). The wire answers are those the routes gave before."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from berth_common import domain_errors
from berth_common.domain_errors import (
    BadCredentials,
    ChunkOutOfOrder,
    DomainError,
    LoginThrottled,
    SessionBusy,
    SessionTakenOver,
)
from berth_common.http.errors import WIRE, install_error_handlers

ROOT = Path(__file__).resolve().parents[2]


def _subclasses(base: type[DomainError]) -> set[type[DomainError]]:
    found: set[type[DomainError]] = set()
    for cls in base.__subclasses__():
        found |= {cls} | _subclasses(cls)
    return found


def test_every_domain_error_has_a_row_in_the_table() -> None:
    mine = {c for c in _subclasses(DomainError) if c.__module__ == domain_errors.__name__}
    assert mine == set(WIRE)


async def _answer(exc: Exception, method: str = "PATCH") -> httpx.Response:
    app = FastAPI()
    install_error_handlers(app)

    @app.api_route("/v2/f/i/blobs/uploads/u", methods=["PATCH", "GET"])
    async def fail() -> None:
        raise exc

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, "/v2/f/i/blobs/uploads/u")


@pytest.mark.parametrize(
    ("exc", "status", "code", "headers"),
    [
        (ChunkOutOfOrder(5, 10), 416, "BLOB_UPLOAD_INVALID", {"range": "0-9"}),
        (ChunkOutOfOrder(5, 0), 416, "BLOB_UPLOAD_INVALID", {"range": "0-0"}),
        (SessionTakenOver(3), 429, "TOOMANYREQUESTS", {"range": "0-2", "retry-after": "1"}),
        (SessionBusy(2.4), 429, "TOOMANYREQUESTS", {"retry-after": "1"}),
        (LoginThrottled("from this address", 7), 429, "TOOMANYREQUESTS", {"retry-after": "7"}),
        (BadCredentials(), 401, "UNAUTHORIZED", {"www-authenticate": 'Basic realm="berth", charset="UTF-8"'}),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
async def test_the_wire_answer_of_each_domain_error(
    exc: DomainError, status: int, code: str, headers: dict[str, str]
) -> None:
    r = await _answer(exc)
    assert r.status_code == status
    assert r.json() == {"errors": [{"code": code, "message": str(exc)}]}
    assert {k: r.headers[k] for k in headers} == headers


async def test_a_subclass_in_a_service_maps_like_its_base() -> None:
    from berth_blob.domain.sessions import LeaseLost

    r = await _answer(LeaseLost(4))
    assert (r.status_code, r.headers["range"]) == (429, "0-3")


def test_domain_code_sets_no_http_headers() -> None:
    """No status codes or response headers in ``services/*/domain``: the table sets them."""
    pattern = re.compile(r'"(Range|Retry-After|WWW-Authenticate|Location)"|status_code')
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted(ROOT.glob("services/*/src/*/domain/*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
