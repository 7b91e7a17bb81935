"""Who is calling: Basic credentials → an ``Identity`` with its principals (docs/SECURITY.md).

Users log in with their password (argon2id); API keys log in as user ``api`` with the key as
password (ProGet's convention). Failed logins are rate limited per (user, client IP) with an
in-process token bucket: ``failures_per_minute`` failures, refilled continuously; when empty the
caller gets ``429 TOOMANYREQUESTS`` until it refills — other users and other IPs are unaffected.
(Per process: with N server processes the limit is N times looser; documented.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from argon2.exceptions import InvalidHashError, VerificationError

from berth_auth.domain.identities import HASHER, hash_secret
from berth_auth.domain.policy import IMPLIES, Principal, Rule, privileges_on
from berth_common.errors import TooManyRequests, Unauthorized

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


class FailureLimiter:
    """Token bucket per (user, client IP) that only failures drain (see module docstring)."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _level(self, key: tuple[str, str]) -> float:
        level, stamp = self.buckets.get(key, (self.capacity, time.monotonic()))
        return min(self.capacity, level + (time.monotonic() - stamp) * self.rate)

    def check(self, user: str, ip: str) -> None:
        """Raise ``TooManyRequests`` when (user, ip) has no failures left."""
        if self._level((user, ip)) < 1.0:
            raise TooManyRequests(
                f"too many failed logins for {user!r} from {ip}; retry in a minute",
                headers={"Retry-After": "60"},
            )

    def failed(self, user: str, ip: str) -> None:
        """Record one failure of (user, ip)."""
        key = (user, ip)
        self.buckets[key] = (self._level(key) - 1.0, time.monotonic())
        if len(self.buckets) > 100_000:
            self.buckets.clear()


BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="berth", charset="UTF-8"'}  # RFC 7617


def _bad_credentials() -> Unauthorized:
    return Unauthorized("invalid username or password", headers=BASIC_CHALLENGE)


async def authenticate(
    pool: asyncpg.Pool, limiter: FailureLimiter, user: str, password: str, ip: str
) -> Identity:
    """Check Basic credentials. Raises ``Unauthorized`` (bad) or ``TooManyRequests``."""
    limiter.check(user, ip)
    if "\0" in user or "\0" in password:  # no stored name or key holds a NUL (PostgreSQL text)
        identity = None
    else:
        identity = await (_api_key(pool, password) if user == "api" else _password(pool, user, password))
    if identity is None:
        limiter.failed(user, ip)
        raise _bad_credentials()
    return identity


async def _password(pool: asyncpg.Pool, user: str, password: str) -> Identity | None:
    row = await pool.fetchrow("SELECT password_hash, disabled FROM auth.users WHERE name = $1", user)
    if row is None or row["disabled"]:
        return None
    try:
        HASHER.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
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
