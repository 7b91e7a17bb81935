"""Issuing tokens (Docker token spec; OAuth2 for ``POST /token``).

``grant`` computes the ``access`` claim: for each requested scope the intersection of the asked
actions and what the identity may do (never an error for a partial grant). Berth extensions
(the verifier reads them; clients ignore them): ``overwrite`` is added to a repository's
actions when ``push`` was granted and the caller may move existing tags; a granted
``registry:catalog:*`` comes with ``feed:<name>:pull`` entries (or ``feed:*``) naming the feeds
whose repositories ``/v2/_catalog`` may list.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt

from berth_auth.domain.credentials import (
    Identity,
    feed_privileges,
    is_admin,
    key_identity,
    load_rules,
    user_identity,
)
from berth_auth.domain.identities import hash_secret
from berth_auth.domain.keys import signing_key
from berth_auth.domain.policy import Rule
from berth_auth.projections import project
from berth_common.auth.scopes import Scope, access_entry
from berth_common.errors import NameInvalid, Unauthorized
from berth_common.events import Metadata
from berth_common.events.identities import RefreshTokenIssued
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.mirror import resolve_repository
from berth_common.settings import AuthSettings
from berth_common.telemetry import token_trace_claim

ACTION_PRIVILEGE = {"pull": "view", "push": "add", "delete": "delete"}


async def _repository_actions(
    pool: asyncpg.Pool, rules: list[Rule], identity: Identity, scope: Scope, default_feed: str | None
) -> list[str]:
    """The actions granted on a repository; its feed is the one the registry routes resolve
    the name to (``berth_common.mirror``: a name without a feed belongs to ``default_feed``)."""
    try:
        feed = (await resolve_repository(pool, scope.name, default_feed)).feed
    except NameInvalid:
        return []
    held = feed_privileges(rules, identity, feed)
    wanted = ["pull", "push", "delete"] if "*" in scope.actions else list(scope.actions)
    granted = [a for a in wanted if ACTION_PRIVILEGE.get(a) in held]
    if "push" in granted and "overwrite" in held:
        granted.append("overwrite")
    return granted


async def grant(
    pool: asyncpg.Pool, identity: Identity, scopes: list[Scope], default_feed: str | None = None
) -> list[dict[str, Any]]:
    """The ``access`` claim for ``identity`` asking for ``scopes`` (see module docstring);
    ``default_feed``: the mirror mode's feed (settings ``default_feed``)."""
    rules = await load_rules(pool)
    access: list[dict[str, Any]] = []
    for scope in scopes:
        actions: list[str] = []
        if scope.type == "repository":
            actions = await _repository_actions(pool, rules, identity, scope, default_feed)
        elif scope.type == "registry" and scope.name == "catalog" and "*" in scope.actions:
            actions = ["*"]
            access.extend(await _catalog_feeds(pool, rules, identity))
        elif scope.type == "registry" and scope.name == "admin" and is_admin(rules, identity):
            actions = ["*"]
        if actions:
            access.append(access_entry(scope, actions))
    return access


async def _catalog_feeds(pool: asyncpg.Pool, rules: list[Rule], identity: Identity) -> list[dict[str, Any]]:
    feeds = [r["name"] for r in await pool.fetch("SELECT name FROM api.v_feeds ORDER BY name")]
    visible = [f for f in feeds if "view" in feed_privileges(rules, identity, f)]
    if feeds and len(visible) == len(feeds) and is_admin(rules, identity):
        return [{"type": "feed", "name": "*", "actions": ["pull"]}]
    return [{"type": "feed", "name": f, "actions": ["pull"]} for f in visible]


async def issue(
    pool: asyncpg.Pool, settings: AuthSettings, identity: Identity, access: list[dict[str, Any]]
) -> dict[str, Any]:
    """Sign an access token; returns the token response body (without ``refresh_token``)."""
    kid, key = await signing_key(pool, settings)
    now = datetime.now(UTC).replace(microsecond=0)
    ttl = settings.token_ttl_seconds
    claims = {
        "iss": settings.issuer,
        "sub": identity.subject,
        "aud": settings.service,
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "nbf": int(now.timestamp()),
        "iat": int(now.timestamp()),
        "jti": str(uuid.uuid4()),
        "access": access,
        **token_trace_claim(),  # requests with this token continue this trace (docs/OPERATIONS.md)
    }
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
    return {
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": now.isoformat().replace("+00:00", "Z"),
    }


async def issue_refresh(
    store: EventStore, settings: AuthSettings, subject: str, meta: Metadata | None = None
) -> str:
    """A new refresh token for ``subject`` (shown once; stored as SHA-256)."""
    token, token_id = "br_" + secrets.token_urlsafe(32), "t-" + secrets.token_hex(6)
    expires = datetime.now(UTC) + timedelta(seconds=settings.refresh_ttl_seconds)

    async def work(uow: UnitOfWork) -> None:
        await uow.emit(
            RefreshTokenIssued(
                token_id=token_id, token_hash=hash_secret(token), subject=subject, expires_at=expires
            ),
        )

    await run_with_retry(store, work, projector=project, metadata=meta)
    return token


async def redeem_refresh(pool: asyncpg.Pool, token: str) -> Identity:
    """The identity a refresh token stands for. Raises ``Unauthorized`` if invalid or revoked."""
    row = await pool.fetchrow(
        "SELECT subject, expires_at, revoked FROM auth.refresh_tokens WHERE token_hash = $1",
        hash_secret(token),
    )
    if row is None or row["revoked"] or row["expires_at"] <= datetime.now(UTC):
        raise Unauthorized("the refresh token is invalid, expired or revoked")
    identity = await identity_of(pool, row["subject"])
    if identity is None:
        raise Unauthorized("the refresh token's user or key is disabled")
    return identity


async def identity_of(pool: asyncpg.Pool, subject: str) -> Identity | None:
    """The current identity of a token subject, or ``None`` if disabled, revoked or expired."""
    if subject.startswith("api-key:"):
        row = await pool.fetchrow(
            "SELECT k.*, u.disabled AS owner_disabled FROM auth.api_keys k LEFT JOIN auth.users u"
            " ON u.name = k.owner WHERE k.key_id = $1",
            subject.removeprefix("api-key:"),
        )
        expired = row is not None and row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC)
        if row is None or row["revoked"] or row["owner_disabled"] or expired:
            return None
        return await key_identity(pool, row)
    disabled = await pool.fetchval("SELECT disabled FROM auth.users WHERE name = $1", subject)
    return None if disabled is None or disabled else await user_identity(pool, subject)
