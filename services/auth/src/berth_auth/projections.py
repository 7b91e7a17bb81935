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
    UserCreated,
    UserDisabled,
    UserPasswordChanged,
)
from berth_common.eventstore import EventContext, ProjectionSpec

TABLES = (
    "auth.users",
    "auth.groups",
    "auth.members",
    "auth.privileges",
    "auth.api_keys",
    "auth.refresh_tokens",
)
TYPES = (
    "user.created",
    "user.password_changed",
    "user.disabled",
    "group.created",
    "group.member_added",
    "group.member_removed",
    "privilege.granted",
    "privilege.revoked",
    "apikey.created",
    "apikey.revoked",
    "refreshtoken.issued",
    "refreshtoken.revoked",
)

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


async def project(conn: Connection, event: Event, ctx: EventContext) -> None:
    """Apply ``event`` to the auth tables (other aggregates' events are ignored)."""
    simple = _SIMPLE.get(type(event))
    if simple is not None:
        sql, fields = simple
        args = [getattr(event, f) for f in fields]
        if isinstance(event, UserPasswordChanged):
            args.append(ctx.occurred_at)
        await conn.execute(sql, *args)
        return
    match event:
        case UserCreated():
            await conn.execute(
                "INSERT INTO auth.users(name, password_hash, email, created_at, password_changed_at)"
                " VALUES ($1, $2, $3, $4, $4)",
                event.user,
                event.password_hash,
                event.email,
                ctx.occurred_at,
            )
        case GroupCreated():
            await conn.execute(
                "INSERT INTO auth.groups(name, created_at) VALUES ($1, $2)", event.group, ctx.occurred_at
            )
        case PrivilegeGranted():
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
        case ApiKeyCreated():
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
        case RefreshTokenIssued():
            await conn.execute(
                "INSERT INTO auth.refresh_tokens(token_id, token_hash, subject, expires_at,"
                " issued_at) VALUES ($1, $2, $3, $4, $5)",
                event.token_id,
                event.token_hash,
                event.subject,
                event.expires_at,
                ctx.occurred_at,
            )
        case _:
            pass


SPEC = ProjectionSpec(name="auth", tables=TABLES, projector=project, types=TYPES)
