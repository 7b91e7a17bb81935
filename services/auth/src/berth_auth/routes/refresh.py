"""Refresh tokens after issue: the admin API to list and revoke them (``berth auth tokens``).

``GET /api/refresh-tokens[?user=U][&all=true]``, ``DELETE /api/refresh-tokens/{token_id}`` and
``DELETE /api/refresh-tokens?user=U`` take an admin token (401 UNAUTHORIZED otherwise; 404
NAME_UNKNOWN for an unknown token, user or key). Their holder gives one up with RFC 7009
``POST /auth/revoke`` (``routes/revoke.py``; ``berth logout``). Every revocation is a
``refreshtoken.revoked`` event.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from berth_auth.domain import refresh
from berth_common.auth import Caller, require
from berth_common.errors import RegistryError
from berth_common.eventstore import EventStore
from berth_common.http.meta import metadata_of

router = APIRouter(tags=["refresh tokens"])
Admin = require("*")


class _SubjectMissing(RegistryError):
    """400 BAD_REQUEST (admin API): revoking by subject needs ``?user=``."""

    code, status, default_message = "BAD_REQUEST", 400, "name the user whose tokens to revoke: ?user=NAME"


def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.resources.store
    return store


@router.get("/api/refresh-tokens")
async def list_refresh_tokens(
    request: Request, user: str | None = None, all: bool = False, caller: Caller = Admin
) -> list[dict[str, Any]]:
    """Usable refresh tokens (with ``all``: also revoked and expired ones), of ``user`` if
    given (a user name or ``api-key:<id>``); never the tokens or their hashes."""
    return await refresh.list_tokens(_store(request).pool, user, include_inactive=all)


@router.delete("/api/refresh-tokens/{token_id}", status_code=204)
async def revoke_refresh_token(token_id: str, request: Request, caller: Caller = Admin) -> Response:
    """Revoke one refresh token by its id (``token_id`` of the listing)."""
    await refresh.revoke_token(_store(request), token_id, metadata_of(request, caller))
    return Response(status_code=204)


@router.delete("/api/refresh-tokens")
async def revoke_refresh_tokens_of(
    request: Request, user: str | None = None, caller: Caller = Admin
) -> dict[str, list[str]]:
    """Revoke every refresh token of ``user``; returns ``{"revoked": [token_id, …]}``."""
    if not user:
        raise _SubjectMissing()
    revoked = await refresh.revoke_subject(_store(request), user, metadata_of(request, caller))
    return {"revoked": revoked}
