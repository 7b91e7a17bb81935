"""Events of the identity aggregates, owned by the auth service (docs/DESIGN.md §2, §4).

Streams: ``user:<name>``, ``group:<name>``, ``privilege:<id>``, ``apikey:<id>``,
``refresh:<id>``, ``signingkey:<kid>``. Secrets never appear in clear: passwords are argon2
hashes, API keys and refresh tokens are SHA-256 hex digests, signing keys publish only the
public part (the private key lives in ``auth.signing_keys``, never in an event).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from berth_common.events.base import Event
from berth_common.events.catalogue import register

PrincipalKind = Literal["user", "group", "key", "everyone", "authenticated", "anonymous"]
Privilege = Literal["view", "add", "overwrite", "delete", "manage", "admin"]


@register
class UserCreated(Event):
    """A user was created with an argon2 ``password_hash`` (never the password)."""

    type_name = "user.created"
    stream_template = "user:{user}"
    user: str
    password_hash: str
    email: str = ""


@register
class UserPasswordChanged(Event):
    """A user's password changed; ``password_hash`` is the new argon2 hash."""

    type_name = "user.password_changed"
    stream_template = "user:{user}"
    user: str
    password_hash: str


@register
class UserDisabled(Event):
    """A user may no longer log in (their tokens stop being renewed)."""

    type_name = "user.disabled"
    stream_template = "user:{user}"
    user: str


@register
class GroupCreated(Event):
    """A group of users was created."""

    type_name = "group.created"
    stream_template = "group:{group}"
    group: str


@register
class MemberAdded(Event):
    """``user`` joined ``group``."""

    type_name = "group.member_added"
    stream_template = "group:{group}"
    group: str
    user: str


@register
class MemberRemoved(Event):
    """``user`` left ``group``."""

    type_name = "group.member_removed"
    stream_template = "group:{group}"
    group: str
    user: str


@register
class PrivilegeGranted(Event):
    """A rule: ``principal`` gets (``effect="grant"``) or is restricted from (``"deny"``)
    ``privilege`` on ``feed`` (``None`` = all feeds). ``principal`` is empty for pseudo-principals.
    """

    type_name = "privilege.granted"
    stream_template = "privilege:{rule_id}"
    rule_id: str
    principal_kind: PrincipalKind
    principal: str = ""
    feed: str | None = None
    privilege: Privilege
    effect: Literal["grant", "deny"] = "grant"


@register
class PrivilegeRevoked(Event):
    """The rule ``rule_id`` (a grant or a restriction) was removed."""

    type_name = "privilege.revoked"
    stream_template = "privilege:{rule_id}"
    rule_id: str


@register
class ApiKeyCreated(Event):
    """An API key: ``key_hash`` is the SHA-256 hex of the key (shown once, never stored).

    ``owner``: the user it acts for (``None``: only its own limits); ``feeds``: the feeds it may
    touch (``None`` = all); ``privileges``: its ceiling; ``expires_at``: ``None`` = never.
    """

    type_name = "apikey.created"
    stream_template = "apikey:{key_id}"
    key_id: str
    key_hash: str
    owner: str | None = None
    feeds: list[str] | None = None
    privileges: list[Privilege] = ["view"]
    expires_at: datetime | None = None
    description: str = ""


@register
class ApiKeyRevoked(Event):
    """The API key ``key_id`` no longer authenticates."""

    type_name = "apikey.revoked"
    stream_template = "apikey:{key_id}"
    key_id: str


@register
class RefreshTokenIssued(Event):
    """A refresh token (``token_hash``: SHA-256 hex) for ``subject`` valid until ``expires_at``."""

    type_name = "refreshtoken.issued"
    stream_template = "refresh:{token_id}"
    token_id: str
    token_hash: str
    subject: str
    expires_at: datetime


@register
class RefreshTokenRevoked(Event):
    """The refresh token ``token_id`` may no longer be exchanged for access tokens."""

    type_name = "refreshtoken.revoked"
    stream_template = "refresh:{token_id}"
    token_id: str


@register
class SigningKeyCreated(Event):
    """A token signing key (ES256): its ``kid`` and public key PEM only (audit trail)."""

    type_name = "signingkey.created"
    stream_template = "signingkey:{kid}"
    kid: str
    public_pem: str
