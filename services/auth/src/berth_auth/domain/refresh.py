"""Refresh tokens after issue: list them, revoke one or all of a subject (an admin's doing;
their holder gives one up through ``routes/revoke.py``).

Refresh tokens are issued by ``domain/tokens.py`` (``offline_token=true``, the OAuth2 password
grant, ``berth login``) and stored as SHA-256 only. Each revocation is one
``refreshtoken.revoked`` event, projected in the same transaction (docs/SECURITY.md,
"Credentials and rate limiting"). Revoking a token that is already revoked records nothing (idempotent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from berth_auth.projections import project
from berth_common.errors import NameUnknown
from berth_common.events import Metadata
from berth_common.events.identities import RefreshTokenRevoked
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry

_COLUMNS = "token_id, subject, issued_at, expires_at, revoked"


async def list_tokens(
    pool: asyncpg.Pool, subject: str | None = None, *, include_inactive: bool = False
) -> list[dict[str, Any]]:
    """Refresh tokens (never their hashes), oldest first: ``token_id``, ``subject`` (a user
    name or ``api-key:<id>``), ``issued_at``, ``expires_at``, ``revoked``. Only usable ones
    (neither revoked nor expired) unless ``include_inactive``; only ``subject``'s if given."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM auth.refresh_tokens"
        " WHERE ($1::text IS NULL OR subject = $1)"
        " AND ($2 OR (NOT revoked AND expires_at > $3))"
        " ORDER BY issued_at, token_id",
        subject,
        include_inactive,
        datetime.now(UTC),
    )
    return [dict(r) for r in rows]


async def revoke_token(store: EventStore, token_id: str, meta: Metadata | None = None) -> None:
    """Revoke refresh token ``token_id``. Raises ``NameUnknown`` if there is no such token."""

    async def work(uow: UnitOfWork) -> None:
        revoked = await uow.conn.fetchval(
            "SELECT revoked FROM auth.refresh_tokens WHERE token_id = $1 FOR UPDATE", token_id
        )
        if revoked is None:
            raise NameUnknown(f"refresh token {token_id!r} does not exist")
        if not revoked:
            await uow.emit(RefreshTokenRevoked(token_id=token_id))

    await run_with_retry(store, work, projector=project, metadata=meta)


async def _subject_exists(uow: UnitOfWork, subject: str) -> bool:
    if subject.startswith("api-key:"):
        sql, value = "SELECT 1 FROM auth.api_keys WHERE key_id = $1", subject.removeprefix("api-key:")
    else:
        sql, value = "SELECT 1 FROM auth.users WHERE name = $1", subject
    return bool(await uow.conn.fetchval(sql, value))


async def revoke_subject(store: EventStore, subject: str, meta: Metadata | None = None) -> list[str]:
    """Revoke every unrevoked refresh token of ``subject`` (a user name or ``api-key:<id>``);
    returns the revoked token ids, empty when it holds none. Raises ``NameUnknown`` when no
    such user or key exists (a mistyped name must not look like a successful revocation)."""

    async def work(uow: UnitOfWork) -> list[str]:
        rows = await uow.conn.fetch(
            "SELECT token_id FROM auth.refresh_tokens WHERE subject = $1 AND NOT revoked"
            " ORDER BY token_id FOR UPDATE",
            subject,
        )
        if not rows and not await _subject_exists(uow, subject):
            raise NameUnknown(f"no user or API key {subject!r}")
        for row in rows:
            await uow.emit(RefreshTokenRevoked(token_id=row["token_id"]))
        return [row["token_id"] for row in rows]

    revoked = await run_with_retry(store, work, projector=project, metadata=meta)
    return revoked
