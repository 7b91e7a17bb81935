"""Identity commands (users, groups, rules, API keys): each change is one event (docs/DESIGN.md §2).

Every command runs in a unit of work with the auth projector, so the admin API reads its own
writes. Raises ``NameInvalid`` for bad names, ``Conflict`` for duplicates and ``NameUnknown``
for missing users, groups, rules or keys (rendered as 400/409/404 by the error handler).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Literal, cast

from argon2 import PasswordHasher

from berth_auth.domain.policy import PRIVILEGES
from berth_auth.projections import project
from berth_common.errors import Conflict, NameInvalid, NameUnknown, RegistryError
from berth_common.events import Event, Metadata
from berth_common.events.identities import (
    ApiKeyCreated,
    ApiKeyRevoked,
    GroupCreated,
    MemberAdded,
    MemberRemoved,
    PrincipalKind,
    Privilege,
    PrivilegeGranted,
    PrivilegeRevoked,
    RefreshTokenRevoked,
    UserCreated,
    UserDisabled,
    UserPasswordChanged,
)
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry

# OWASP's minimum argon2id parameters (19 MiB, 2 passes): ~20 ms per check on a laptop core.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
RESERVED = frozenset({"api", "anonymous", "everyone", "authenticated"})
PSEUDO = ("everyone", "authenticated", "anonymous")
Effect = Literal["grant", "deny"]


def validate_name(name: str, what: str) -> str:
    """``name`` if it is a valid user/group name (letters, digits, ``._@-``, ≤ 64, not reserved)."""
    if not NAME.match(name) or name.lower() in RESERVED:
        raise NameInvalid(
            f"invalid {what} name {name[:80]!r}: letters, digits and '._@-', at most"
            f" 64 characters, not one of {', '.join(sorted(RESERVED))}"
        )
    return name


class PasswordInvalid(RegistryError):
    """400 PASSWORD_INVALID (admin API only): the password breaks the password policy."""

    code, status, default_message = "PASSWORD_INVALID", 400, "the password breaks the password policy"


def check_password(password: str, min_length: int) -> str:
    """``password`` if it meets the policy (at least ``min_length`` characters, the setting
    ``auth.min_password_length``). Raises ``PasswordInvalid`` with a message saying what is missing."""
    if len(password) < min_length:
        raise PasswordInvalid(
            f"the password is too short: {len(password)} characters, at least {min_length} are"
            " required (setting auth.min_password_length)"
        )
    return password


def hash_secret(secret: str) -> str:
    """SHA-256 hex of an API key or refresh token (high-entropy secrets need no slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def _emit_one(
    store: EventStore,
    event: Event,
    meta: Metadata | None,
    check: str | None = None,
    *args: object,
    exists: bool = True,
    error: Exception | None = None,
) -> None:
    async def work(uow: UnitOfWork) -> None:
        if check is not None:
            found = bool(await uow.conn.fetchval(check, *args))
            if found != exists and error is not None:
                raise error
        await uow.emit(event)

    await run_with_retry(store, work, projector=project, metadata=meta)


async def create_user(
    store: EventStore,
    name: str,
    password: str,
    email: str = "",
    meta: Metadata | None = None,
    *,
    min_length: int = 1,
) -> None:
    """Create user ``name`` with ``password`` (stored as an argon2id hash).

    Raises ``NameInvalid``, ``PasswordInvalid`` (shorter than ``min_length``) or ``Conflict``.
    """
    validate_name(name, "user")
    check_password(password, max(1, min_length))
    await _emit_one(
        store,
        UserCreated(user=name, password_hash=HASHER.hash(password), email=email),
        meta,
        "SELECT 1 FROM auth.users WHERE name = $1",
        name,
        exists=False,
        error=Conflict(f"user {name!r} already exists"),
    )


async def change_password(
    store: EventStore, name: str, password: str, meta: Metadata | None = None, *, min_length: int = 1
) -> None:
    """Set a new password; the user's refresh tokens are revoked.

    Raises ``PasswordInvalid`` (shorter than ``min_length``) or ``NameUnknown``.
    """
    check_password(password, max(1, min_length))
    await _user_event(store, name, UserPasswordChanged(user=name, password_hash=HASHER.hash(password)), meta)


async def disable_user(store: EventStore, name: str, meta: Metadata | None = None) -> None:
    """Disable a user: no more logins, refresh tokens revoked."""
    await _user_event(store, name, UserDisabled(user=name), meta)


async def _user_event(store: EventStore, name: str, event: Event, meta: Metadata | None) -> None:
    async def work(uow: UnitOfWork) -> None:
        if not await uow.conn.fetchval("SELECT 1 FROM auth.users WHERE name = $1", name):
            raise NameUnknown(f"user {name!r} does not exist")
        await uow.emit(event)
        tokens = await uow.conn.fetch(
            "SELECT token_id FROM auth.refresh_tokens WHERE subject = $1 AND NOT revoked", name
        )
        for row in tokens:
            await uow.emit(RefreshTokenRevoked(token_id=row["token_id"]))

    await run_with_retry(store, work, projector=project, metadata=meta)


async def create_group(store: EventStore, name: str, meta: Metadata | None = None) -> None:
    """Create group ``name``."""
    validate_name(name, "group")
    await _emit_one(
        store,
        GroupCreated(group=name),
        meta,
        "SELECT 1 FROM auth.groups WHERE name = $1",
        name,
        exists=False,
        error=Conflict(f"group {name!r} already exists"),
    )


async def set_member(
    store: EventStore, group: str, user: str, present: bool, meta: Metadata | None = None
) -> None:
    """Add ``user`` to (``present``) or remove them from ``group``."""

    async def work(uow: UnitOfWork) -> None:
        if not await uow.conn.fetchval("SELECT 1 FROM auth.groups WHERE name = $1", group):
            raise NameUnknown(f"group {group!r} does not exist")
        if not await uow.conn.fetchval("SELECT 1 FROM auth.users WHERE name = $1", user):
            raise NameUnknown(f"user {user!r} does not exist")
        event = MemberAdded if present else MemberRemoved
        await uow.emit(event(group=group, user=user))

    await run_with_retry(store, work, projector=project, metadata=meta)


async def grant(
    store: EventStore,
    principal_kind: str,
    principal: str,
    privilege: str,
    feed: str | None,
    effect: str = "grant",
    meta: Metadata | None = None,
) -> str:
    """Add a rule; returns its id. ``principal_kind`` user|group|key|everyone|authenticated|anonymous."""
    if privilege not in PRIVILEGES:
        raise NameInvalid(f"unknown privilege {privilege!r}; one of {', '.join(PRIVILEGES)}")
    if effect not in ("grant", "deny"):
        raise NameInvalid(f"unknown effect {effect!r}; grant or deny")
    if privilege == "admin" and feed is not None:
        raise NameInvalid("admin is a system privilege: it cannot be limited to a feed")
    table = {"user": "auth.users", "group": "auth.groups", "key": "auth.api_keys"}.get(principal_kind)
    if table is None and principal_kind not in PSEUDO:
        raise NameInvalid(f"unknown principal kind {principal_kind!r}")
    rule_id = "r-" + secrets.token_hex(6)
    event = PrivilegeGranted(
        rule_id=rule_id,
        principal_kind=cast(PrincipalKind, principal_kind),  # checked above
        principal=principal if table else "",
        feed=feed,
        privilege=cast(Privilege, privilege),  # checked above
        effect=cast(Effect, effect),  # checked above
    )
    column = "key_id" if principal_kind == "key" else "name"
    check = f"SELECT 1 FROM {table} WHERE {column} = $1" if table else None
    await _emit_one(
        store,
        event,
        meta,
        check,
        principal,
        error=NameUnknown(f"{principal_kind} {principal!r} does not exist"),
    )
    return rule_id


async def revoke(store: EventStore, rule_id: str, meta: Metadata | None = None) -> None:
    """Remove the rule ``rule_id``."""
    await _emit_one(
        store,
        PrivilegeRevoked(rule_id=rule_id),
        meta,
        "SELECT 1 FROM auth.privileges WHERE rule_id = $1",
        rule_id,
        error=NameUnknown(f"rule {rule_id!r} does not exist"),
    )


async def create_key(
    store: EventStore,
    owner: str | None,
    feeds: list[str] | None,
    privileges: list[str],
    expires_at: datetime | None,
    description: str = "",
    meta: Metadata | None = None,
) -> tuple[str, str]:
    """Create an API key; returns ``(key_id, key)``. The key is shown once and never stored."""
    bad = [p for p in privileges if p not in PRIVILEGES]
    if bad or not privileges:
        raise NameInvalid(f"privileges must be some of {', '.join(PRIVILEGES)}")
    key_id, key = "k-" + secrets.token_hex(4), "bk_" + secrets.token_urlsafe(32)
    event = ApiKeyCreated(
        key_id=key_id,
        key_hash=hash_secret(key),
        owner=owner,
        feeds=feeds,
        privileges=cast(list[Privilege], privileges),  # checked above
        expires_at=expires_at,
        description=description,
    )
    check = "SELECT 1 FROM auth.users WHERE name = $1" if owner else None
    await _emit_one(
        store,
        event,
        meta,
        check,
        owner,
        error=NameUnknown(f"user {owner!r} does not exist"),
    )
    return key_id, key


async def revoke_key(store: EventStore, key_id: str, meta: Metadata | None = None) -> None:
    """Revoke API key ``key_id``."""
    await _emit_one(
        store,
        ApiKeyRevoked(key_id=key_id),
        meta,
        "SELECT 1 FROM auth.api_keys WHERE key_id = $1",
        key_id,
        error=NameUnknown(f"API key {key_id!r} does not exist"),
    )
