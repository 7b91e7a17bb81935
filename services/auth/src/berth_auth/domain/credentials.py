"""Who is calling: Basic credentials → an ``Identity`` with its principals (docs/SECURITY.md).

Users log in with their password (argon2id); API keys log in as user ``api`` with the key as
password (ProGet's convention). Failed logins are limited per client address and per (user
name, address) across all processes (``berth_auth.domain.limits``).

A failed login costs the same whether or not the user name exists: an unknown (or disabled)
user is checked against a dummy argon2id hash made with the same parameters as real ones, so
the answer's timing does not tell names apart. API keys are high-entropy and looked up by
their SHA-256, with no slow hash on any path; ``api`` is a fixed name, so its path says
nothing about which user names exist.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import asyncpg
from anyio import to_thread
from argon2.exceptions import InvalidHashError, VerificationError

from berth_auth.domain import identities
from berth_auth.domain.identities import hash_secret
from berth_auth.domain.limits import LoginLimits
from berth_auth.domain.policy import IMPLIES, Principal, Rule, privileges_on
from berth_common.domain_errors import BadCredentials

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """An authenticated (or anonymous) caller.

    ``subject``: the token's ``sub`` (user name, ``api-key:<id>`` or ``anonymous``);
    ``principals``: who the rules may name; ``limit_feeds``/``limit_privileges``: an API key's
    ceiling (``None`` = no ceiling); ``extra_rules``: an owner-less key's own grants.
    """

    subject: str
    principals: tuple[Principal, ...]
    limit_feeds: frozenset[str] | None = None
    limit_privileges: frozenset[str] | None = None
    extra_rules: tuple[Rule, ...] = field(default=())

    @property
    def anonymous(self) -> bool:
        """True for the anonymous caller."""
        return self.subject == ANONYMOUS


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, (("anonymous", ""), ("everyone", "")))


@cache
def dummy_hash() -> str:
    """An argon2id hash of a random secret, made (once per process) by the hasher of real
    passwords, so checking a password against it costs what checking a real one does."""
    return identities.HASHER.hash(secrets.token_urlsafe(32))


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the argon2id hash ``stored``; always runs one argon2id
    check (against :func:`dummy_hash` when ``stored`` is None), in a worker thread."""

    def check() -> bool:
        try:
            return bool(identities.HASHER.verify(stored or dummy_hash(), password))
        except (VerificationError, InvalidHashError):
            return False

    matched = await to_thread.run_sync(check)
    return matched and stored is not None


async def authenticate(
    pool: asyncpg.Pool, limits: LoginLimits, user: str, password: str, ip: str
) -> Identity:
    """Check Basic credentials from client address ``ip``.

    Raises:
        LoginThrottled: too many failures from ``ip`` or for ``user`` from ``ip`` (429).
        BadCredentials: wrong credentials, unknown, disabled, revoked or expired alike (401).
    """
    await limits.check(user, ip)
    if user == "api":
        identity = await _api_key(pool, password)
    else:
        identity = await _password(pool, user, password)
    if identity is None:
        await limits.failed(user, ip)
        raise BadCredentials()
    return identity


async def _password(pool: asyncpg.Pool, user: str, password: str) -> Identity | None:
    row = None
    if "\0" not in user:  # no stored name holds a NUL (PostgreSQL text cannot)
        row = await pool.fetchrow("SELECT password_hash, disabled FROM auth.users WHERE name = $1", user)
    matched = await verify_password(row["password_hash"] if row is not None else None, password)
    if row is None or row["disabled"] or not matched:
        return None
    return await user_identity(pool, user)


async def user_identity(pool: asyncpg.Pool, user: str) -> Identity:
    """The identity of enabled user ``user`` (with their groups)."""
    groups = await pool.fetch("SELECT group_name FROM auth.members WHERE user_name = $1", user)
    principals = [
        ("user", user),
        *[("group", g["group_name"]) for g in groups],
        ("authenticated", ""),
        ("everyone", ""),
    ]
    return Identity(user, tuple(principals))


async def _api_key(pool: asyncpg.Pool, key: str) -> Identity | None:
    if "\0" in key:  # no key holds a NUL; the SHA-256 lookup would find nothing either
        return None
    row = await pool.fetchrow(
        "SELECT k.key_id, k.owner, k.feeds, k.privileges, k.expires_at, k.revoked,"
        " u.disabled AS owner_disabled FROM auth.api_keys k LEFT JOIN auth.users u"
        " ON u.name = k.owner WHERE k.key_hash = $1",
        hash_secret(key),
    )
    if row is None or row["revoked"] or row["owner_disabled"]:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        return None
    return await key_identity(pool, row)


async def key_identity(pool: asyncpg.Pool, row: asyncpg.Record) -> Identity:
    """The identity of an API key row: its owner's principals plus the key, within its limits."""
    key_id, feeds, privileges = row["key_id"], row["feeds"], row["privileges"]
    limit = frozenset(p for q in privileges for p in IMPLIES.get(q, ()))
    key_principal = ("key", key_id)
    if row["owner"]:
        owner = await user_identity(pool, row["owner"])
        return Identity(
            f"api-key:{key_id}",
            (key_principal, *owner.principals),
            frozenset(feeds) if feeds is not None else None,
            limit,
        )
    own = tuple(Rule("key", key_id, feed, p) for feed in (feeds or [None]) for p in privileges)
    return Identity(
        f"api-key:{key_id}",
        (key_principal, ("authenticated", ""), ("everyone", "")),
        frozenset(feeds) if feeds is not None else None,
        limit,
        own,
    )


async def load_rules(pool: asyncpg.Pool) -> list[Rule]:
    """Every rule, plus ``Everyone may view`` for each public feed (``api.v_feeds``)."""
    rows = await pool.fetch("SELECT principal_kind, principal, feed, privilege, effect FROM auth.privileges")
    rules = [Rule(r["principal_kind"], r["principal"], r["feed"], r["privilege"], r["effect"]) for r in rows]
    public = await pool.fetch("SELECT name FROM api.v_feeds WHERE public")
    return rules + [Rule("everyone", "", r["name"], "view") for r in public]


def feed_privileges(rules: list[Rule], identity: Identity, feed: str) -> frozenset[str]:
    """What ``identity`` may do on ``feed`` (within an API key's limits)."""
    held = privileges_on([*rules, *identity.extra_rules], list(identity.principals), feed)
    if identity.limit_feeds is not None and feed not in identity.limit_feeds:
        return frozenset()
    if identity.limit_privileges is not None:
        held &= identity.limit_privileges
    return held


def is_admin(rules: list[Rule], identity: Identity) -> bool:
    """Whether ``identity`` holds the system Admin privilege (never through an API key ceiling)."""
    from berth_auth.domain.policy import allowed

    if identity.limit_privileges is not None and "admin" not in identity.limit_privileges:
        return False
    return allowed([*rules, *identity.extra_rules], identity.principals, None, "admin")
