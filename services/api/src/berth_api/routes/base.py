"""``GET /v2/``: the API version check (OCI distribution spec v1.1, "Determining support")."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from berth_common.auth import Caller, require

router = APIRouter()


@router.get("/v2/", include_in_schema=False)
@router.head("/v2/", include_in_schema=False)
async def version_check(caller: Caller = require("pull")) -> JSONResponse:
    """200 ``{}`` with ``Docker-Distribution-API-Version: registry/2.0``."""
    return JSONResponse({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})
