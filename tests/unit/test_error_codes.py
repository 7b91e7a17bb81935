"""The error catalogue keeps to the spec's fourteen codes (docs/ARCHITECTURE.md, "Errors").

OCI distribution spec v1.1.1, "Error Codes": a 4XX JSON body's ``code`` MUST be one of the
table's fourteen. 5XX bodies are outside the spec; Berth sends UNKNOWN (500) and UNAVAILABLE
(503) there, as Distribution does.
"""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Query

from berth_common import errors
from berth_common.errors import SPEC_CODES, RegistryError
from berth_common.http.errors import install_error_handlers

ADMIN_ONLY = {errors.Conflict}  # Berth's own /api/ (409 when a feed exists), never /v2/


def _classes(base: type[RegistryError] = RegistryError) -> set[type[RegistryError]]:
    found: set[type[RegistryError]] = set()
    for cls in base.__subclasses__():
        found |= {cls} | _classes(cls)
    return found


CLASSES = sorted(_classes(), key=lambda c: c.__qualname__)


def test_spec_codes_are_the_fourteen_of_the_table() -> None:
    assert len(SPEC_CODES) == 14
    assert {"TAG_INVALID", "RANGE_INVALID", "PAGINATION_NUMBER_INVALID"}.isdisjoint(SPEC_CODES)


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__qualname__ for c in CLASSES])
def test_every_4xx_class_carries_a_spec_code(cls: type[RegistryError]) -> None:
    if cls.status >= 500:
        assert cls.code in {"UNKNOWN", "UNAVAILABLE"}, cls
    elif cls not in ADMIN_ONLY and cls.__module__ == errors.__name__:
        assert cls.code in SPEC_CODES, cls


def test_statuses_of_the_special_cases() -> None:
    """416s carry BLOB_UPLOAD_INVALID (upload) / SIZE_INVALID (blob GET); 429 TOOMANYREQUESTS."""
    assert (errors.RangeInvalid.status, errors.RangeInvalid.code) == (416, "BLOB_UPLOAD_INVALID")
    assert (errors.RangeNotSatisfiable.status, errors.RangeNotSatisfiable.code) == (416, "SIZE_INVALID")
    assert (errors.TooManyRequests.status, errors.TooManyRequests.code) == (429, "TOOMANYREQUESTS")
    assert (errors.Unavailable.status, errors.Unavailable.code) == (503, "UNAVAILABLE")
    assert (errors.InternalError.status, errors.InternalError.code) == (500, "UNKNOWN")
    assert (errors.PaginationNumberInvalid.status, errors.PaginationNumberInvalid.code) == (
        400,
        "UNSUPPORTED",
    )


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v2/{name:path}/outage/x")
    async def outage(name: str) -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    @app.get("/v2/{name:path}/timeout/x")
    async def timeout(name: str) -> None:
        raise TimeoutError  # asyncpg's command_timeout (a query waiting on a lock), as raised

    @app.get("/v2/{name:path}/bug/x")
    async def bug(name: str) -> None:
        raise RuntimeError("a bug")

    @app.get("/v2/{name:path}/manifests/{ref}")
    async def typed_manifest(name: str, ref: str, n: int = Query()) -> None:
        return None

    @app.get("/v2/{name:path}/blobs/uploads/{uid}")
    async def typed_upload(name: str, uid: str, n: int = Query()) -> None:
        return None

    @app.get("/v2/{name:path}/tags/list")
    async def typed_tags(name: str, n: int = Query()) -> None:
        return None

    @app.get("/api/things")
    async def typed_admin(n: int = Query()) -> None:
        return None

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/f/i/outage/x", 503, "UNAVAILABLE"),
        ("/v2/f/i/timeout/x", 503, "UNAVAILABLE"),
        ("/v2/f/i/bug/x", 500, "UNKNOWN"),
        ("/v2/f/i/manifests/v1?n=x", 400, "MANIFEST_INVALID"),
        ("/v2/f/i/blobs/uploads/u?n=x", 400, "BLOB_UPLOAD_INVALID"),
        ("/v2/f/i/tags/list?n=x", 400, "UNSUPPORTED"),
        ("/v2/f/i/nowhere", 404, "NAME_UNKNOWN"),
        ("/api/things?n=x", 400, "BAD_REQUEST"),
    ],
)
async def test_rendered_codes(path: str, status: int, code: str) -> None:
    r = await _get(path)
    assert r.status_code == status
    assert [e["code"] for e in r.json()["errors"]] == [code]
