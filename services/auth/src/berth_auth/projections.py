"""The auth service's projector: the only code that writes its projection tables (docs/DESIGN.md §2).

Used live (in the command's transaction) and by ``berth projections rebuild``. It reads only the
event and its context, so a rebuild gives the same rows. ``auth.signing_keys`` is not a
projection (private keys are never events); see ``domain/keys.py``.
"""

from __future__ import annotations

from berth_common.db import Connection
from berth_common.events import Event
from berth_common.events.identities import (
    ApiKeyCreated,
    ApiKeyRevoked,
    GroupCreated,
    MemberAdded,
    MemberRemoved,
    PrivilegeGranted,
    PrivilegeRevoked,
    RefreshTokenIssued,
    RefreshTokenRevoked,
    SigningKeyCreated,
    UserCreated,
    UserDisabled,
    UserPasswordChanged,
)
from berth_common.eventstore import EventContext, Handlers, ProjectionSpec

TABLES = (
    "auth.users",
    "auth.groups",
    "auth.members",
    "auth.privileges",
    "auth.api_keys",
    "auth.refresh_tokens",
)
project = Handlers("auth")
"""Apply an event to the auth tables; its handlers name the types it consumes."""
project.ignore(SigningKeyCreated)  # the key row is written by the command (private keys are no events)

_SIMPLE: dict[type[Event], tuple[str, tuple[str, ...]]] = {
    UserPasswordChanged: (
        "UPDATE auth.users SET password_hash = $2, password_changed_at = $3 WHERE name = $1",
        ("user", "password_hash"),
    ),
    UserDisabled: ("UPDATE auth.users SET disabled = true WHERE name = $1", ("user",)),
    MemberAdded: (
        "INSERT INTO auth.members(group_name, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        ("group", "user"),
    ),
    MemberRemoved: ("DELETE FROM auth.members WHERE group_name = $1 AND user_name = $2", ("group", "user")),
    PrivilegeRevoked: ("DELETE FROM auth.privileges WHERE rule_id = $1", ("rule_id",)),
    ApiKeyRevoked: ("UPDATE auth.api_keys SET revoked = true WHERE key_id = $1", ("key_id",)),
    RefreshTokenRevoked: ("UPDATE auth.refresh_tokens SET revoked = true WHERE token_id = $1", ("token_id",)),
}


def _simple(cls: type[Event], sql: str, fields: tuple[str, ...]) -> None:
    """Register a handler that runs ``sql`` with the event's ``fields`` (the password change
    also with its time)."""

    @project.on(cls)
    async def handle(conn: Connection, event: Event, ctx: EventContext) -> None:
        args = [getattr(event, f) for f in fields]
        if isinstance(event, UserPasswordChanged):
            args.append(ctx.occurred_at)
        await conn.execute(sql, *args)


for _cls, (_sql, _fields) in _SIMPLE.items():
    _simple(_cls, _sql, _fields)


@project.on(UserCreated)
async def _user_created(conn: Connection, event: UserCreated, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO auth.users(name, password_hash, email, created_at, password_changed_at)"
        " VALUES ($1, $2, $3, $4, $4)",
        event.user,
        event.password_hash,
        event.email,
        ctx.occurred_at,
    )


@project.on(GroupCreated)
async def _group_created(conn: Connection, event: GroupCreated, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO auth.groups(name, created_at) VALUES ($1, $2)", event.group, ctx.occurred_at
    )


@project.on(PrivilegeGranted)
async def _privilege_granted(conn: Connection, event: PrivilegeGranted, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO auth.privileges(rule_id, principal_kind, principal, feed, privilege,"
        " effect, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event.rule_id,
        event.principal_kind,
        event.principal,
        event.feed,
        event.privilege,
        event.effect,
        ctx.occurred_at,
    )


@project.on(ApiKeyCreated)
async def _api_key_created(conn: Connection, event: ApiKeyCreated, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO auth.api_keys(key_id, key_hash, owner, feeds, privileges, expires_at,"
        " description, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        event.key_id,
        event.key_hash,
        event.owner,
        event.feeds,
        list(event.privileges),
        event.expires_at,
        event.description,
        ctx.occurred_at,
    )


@project.on(RefreshTokenIssued)
async def _refresh_token_issued(conn: Connection, event: RefreshTokenIssued, ctx: EventContext) -> None:
    await conn.execute(
        "INSERT INTO auth.refresh_tokens(token_id, token_hash, subject, expires_at,"
        " issued_at) VALUES ($1, $2, $3, $4, $5)",
        event.token_id,
        event.token_hash,
        event.subject,
        event.expires_at,
        ctx.occurred_at,
    )


SPEC = ProjectionSpec(name="auth", tables=TABLES, projector=project)
