"""The admin JSON API for identities and privileges (OpenAPI at ``/api/docs``); Admin only.

``/api/users``, ``/api/groups``, ``/api/privileges``, ``/api/keys``, ``/api/signing-keys/rotate``
(refresh tokens: ``routes/refresh.py``). Errors: 400 NAME_INVALID, 400 PASSWORD_INVALID (shorter
than ``auth.min_password_length``), 404 NAME_UNKNOWN, 409 CONFLICT, 401 UNAUTHORIZED without an
admin token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from berth_auth.domain import identities as ids
from berth_common.auth import Caller, require
from berth_common.eventstore import EventStore
from berth_common.http.meta import metadata_of

router = APIRouter(prefix="/api", tags=["identities"])
Admin = require("*")


def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.resources.store
    return store


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.resources.pool
    return pool


def _min_password_length(request: Request) -> int:
    length: int = request.app.state.resources.settings.auth.min_password_length
    return length


class UserIn(BaseModel):
    """A user to create."""

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: str = ""


class PasswordIn(BaseModel):
    """A new password."""

    password: str = Field(min_length=1, max_length=1024)


class GroupIn(BaseModel):
    """A group to create."""

    name: str = Field(min_length=1, max_length=64)


class MemberIn(BaseModel):
    """A user to add to a group."""

    user: str


class RuleIn(BaseModel):
    """A grant or restriction; ``feed`` ``None`` means all feeds."""

    principal_kind: Literal["user", "group", "key", "everyone", "authenticated", "anonymous"]
    principal: str = ""
    privilege: Literal["view", "add", "overwrite", "delete", "manage", "admin"]
    feed: str | None = None
    effect: Literal["grant", "deny"] = "grant"


class KeyIn(BaseModel):
    """An API key to create: acting for ``owner`` (optional) within ``feeds``/``privileges``."""

    owner: str | None = None
    feeds: list[str] | None = None
    privileges: list[str] = ["view"]
    expires_at: datetime | None = None
    description: str = ""


@router.post("/users", status_code=201)
async def post_user(body: UserIn, request: Request, caller: Caller = Admin) -> dict[str, str]:
    """Create a user (400 PASSWORD_INVALID when the password breaks the policy)."""
    await ids.create_user(
        _store(request),
        body.name,
        body.password,
        body.email,
        metadata_of(request, caller),
        min_length=_min_password_length(request),
    )
    return {"name": body.name}


@router.get("/users")
async def list_users(request: Request, caller: Caller = Admin) -> list[dict[str, object]]:
    """Users with their groups (never password hashes)."""
    rows = await _pool(request).fetch(
        "SELECT u.name, u.email, u.disabled, u.created_at, coalesce(array_agg(m.group_name)"
        " FILTER (WHERE m.group_name IS NOT NULL), '{}') AS groups FROM auth.users u"
        " LEFT JOIN auth.members m ON m.user_name = u.name GROUP BY u.name ORDER BY u.name"
    )
    return [dict(r) for r in rows]


@router.put("/users/{user}/password", status_code=204)
async def put_password(user: str, body: PasswordIn, request: Request, caller: Caller = Admin) -> Response:
    """Set a user's password (revokes their refresh tokens; 400 PASSWORD_INVALID below the policy)."""
    await ids.change_password(
        _store(request),
        user,
        body.password,
        metadata_of(request, caller),
        min_length=_min_password_length(request),
    )
    return Response(status_code=204)


@router.post("/users/{user}/disable", status_code=204)
async def disable(user: str, request: Request, caller: Caller = Admin) -> Response:
    """Disable a user (revokes their refresh tokens)."""
    await ids.disable_user(_store(request), user, metadata_of(request, caller))
    return Response(status_code=204)


@router.post("/groups", status_code=201)
async def post_group(body: GroupIn, request: Request, caller: Caller = Admin) -> dict[str, str]:
    """Create a group."""
    await ids.create_group(_store(request), body.name, metadata_of(request, caller))
    return {"name": body.name}


@router.get("/groups")
async def list_groups(request: Request, caller: Caller = Admin) -> list[dict[str, object]]:
    """Groups with their members."""
    rows = await _pool(request).fetch(
        "SELECT g.name, coalesce(array_agg(m.user_name ORDER BY m.user_name) FILTER"
        " (WHERE m.user_name IS NOT NULL), '{}') AS members FROM auth.groups g"
        " LEFT JOIN auth.members m ON m.group_name = g.name GROUP BY g.name ORDER BY g.name"
    )
    return [dict(r) for r in rows]


@router.post("/groups/{group}/members", status_code=204)
async def add_member(group: str, body: MemberIn, request: Request, caller: Caller = Admin) -> Response:
    """Add a user to a group."""
    await ids.set_member(_store(request), group, body.user, True, metadata_of(request, caller))
    return Response(status_code=204)


@router.delete("/groups/{group}/members/{user}", status_code=204)
async def remove_member(group: str, user: str, request: Request, caller: Caller = Admin) -> Response:
    """Remove a user from a group."""
    await ids.set_member(_store(request), group, user, False, metadata_of(request, caller))
    return Response(status_code=204)


@router.post("/privileges", status_code=201)
async def post_rule(body: RuleIn, request: Request, caller: Caller = Admin) -> dict[str, str]:
    """Add a grant or restriction; returns ``{"rule_id": ...}``."""
    rule_id = await ids.grant(
        _store(request),
        body.principal_kind,
        body.principal,
        body.privilege,
        body.feed,
        body.effect,
        metadata_of(request, caller),
    )
    return {"rule_id": rule_id}


@router.get("/privileges")
async def list_rules(
    request: Request, feed: str | None = None, principal: str | None = None, caller: Caller = Admin
) -> list[dict[str, object]]:
    """Grants and restrictions, oldest first. ``feed``: those on that feed and on all feeds
    (every rule that applies to it); ``principal``: ``user:NAME``, ``group:NAME``, ``key:ID``,
    ``everyone``, ``authenticated`` or ``anonymous``, exactly."""
    kind, _, name = (principal or "").partition(":")
    rows = await _pool(request).fetch(
        "SELECT rule_id, principal_kind, principal, feed, privilege, effect, created_at"
        " FROM auth.privileges WHERE ($1::text IS NULL OR feed = $1 OR feed IS NULL)"
        " AND ($2 = '' OR (principal_kind = $2 AND principal = $3)) ORDER BY created_at, rule_id",
        feed,
        kind,
        name,
    )
    return [dict(r) for r in rows]


@router.delete("/privileges/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, request: Request, caller: Caller = Admin) -> Response:
    """Remove a grant or restriction."""
    await ids.revoke(_store(request), rule_id, metadata_of(request, caller))
    return Response(status_code=204)


@router.post("/keys", status_code=201)
async def post_key(body: KeyIn, request: Request, caller: Caller = Admin) -> dict[str, str]:
    """Create an API key; the response holds the key, shown this once."""
    key_id, key = await ids.create_key(
        _store(request),
        body.owner,
        body.feeds,
        body.privileges,
        body.expires_at,
        body.description,
        metadata_of(request, caller),
    )
    return {"key_id": key_id, "key": key}


@router.get("/keys")
async def list_keys(request: Request, caller: Caller = Admin) -> list[dict[str, object]]:
    """API keys (never the keys or their hashes)."""
    rows = await _pool(request).fetch(
        "SELECT key_id, owner, feeds, privileges, expires_at, description, revoked, created_at"
        " FROM auth.api_keys ORDER BY created_at, key_id"
    )
    return [dict(r) for r in rows]


@router.delete("/keys/{key_id}", status_code=204)
async def delete_key(key_id: str, request: Request, caller: Caller = Admin) -> Response:
    """Revoke an API key."""
    await ids.revoke_key(_store(request), key_id, metadata_of(request, caller))
    return Response(status_code=204)


@router.post("/signing-keys/rotate", status_code=201)
async def rotate(request: Request, caller: Caller = Admin) -> dict[str, str]:
    """Create a new signing key; the old ones keep verifying for twice the token lifetime."""
    from berth_auth.domain.keys import create_key

    settings = request.app.state.resources.settings.auth
    kid = await create_key(
        _store(request),
        settings,
        retire_others_after=2 * settings.token_ttl_seconds,
        meta=metadata_of(request, caller),
    )
    return {"kid": kid}
