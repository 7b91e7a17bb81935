"""OAuth 2.0 Token Revocation (RFC 7009) for refresh tokens: ``POST /auth/revoke``.

Form-encoded ``token=<refresh token>`` (``token_type_hint`` is accepted and ignored: only
refresh tokens are revocable; access tokens expire on their own within
``auth.token_ttl_seconds``). The token itself is the credential, as RFC 7009 §2.1 allows for
public clients: whoever holds it may end it. ``200`` whether or not the token was known or
still valid (§2.2: an invalid token is no error), so the answer tells nothing. The web UI's
logout calls this (docs/SECURITY.md).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from berth_auth.domain.identities import hash_secret
from berth_auth.projections import project
from berth_common.events import Metadata
from berth_common.events.identities import RefreshTokenRevoked
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry

router = APIRouter(tags=["token"])


async def revoke_refresh(store: EventStore, token: str) -> bool:
    """Revoke the refresh token ``token`` (``RefreshTokenRevoked``); ``False`` if it is unknown
    or already revoked (nothing is recorded then)."""
    revoked = False

    async def work(uow: UnitOfWork) -> None:
        nonlocal revoked
        row = await uow.conn.fetchrow(
            "SELECT token_id, subject FROM auth.refresh_tokens WHERE token_hash = $1 AND NOT revoked"
            " FOR UPDATE",
            hash_secret(token),
        )
        if row is None:
            return
        uow.metadata = Metadata(actor=row["subject"])
        await uow.emit(RefreshTokenRevoked(token_id=row["token_id"]))
        revoked = True

    await run_with_retry(store, work, projector=project)
    return revoked


@router.post("/auth/revoke", status_code=200)
async def post_revoke(request: Request) -> Response:
    """Revoke a refresh token (RFC 7009); always ``200`` with an empty body."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[-1]
    if token and "\0" not in token:
        await revoke_refresh(request.app.state.resources.store, token)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})
