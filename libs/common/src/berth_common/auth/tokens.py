"""Local verification of Berth's bearer tokens: no call to the auth service per request.

Public keys come from the auth service's published view ``auth.v_signing_keys`` and are cached;
an unknown ``kid`` triggers a reload (concurrent ones share one query; at most one per
``MIN_RELOAD_GAP``, 50 ms, so forged kids cannot flood PostgreSQL while a token signed with a
key rotated in a moment ago is accepted at once), and the cache is reloaded every minute so
retired keys stop verifying. Checked: ES256 signature, ``kid``, ``iss``, ``aud``,
``exp``/``nbf``/``iat`` with ``LEEWAY`` seconds, and the shape of ``access``.

Verified claims are remembered per token string until the token expires (clients reuse one
token for many requests, and an ES256 verification costs more than the rest of a manifest GET);
a remembered token is still refused once its ``kid`` is no longer published.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from berth_common.settings import AuthSettings

LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat
RELOAD_EVERY = 60.0
MIN_RELOAD_GAP = 0.05
MAX_VERIFIED = 10_000  # remembered tokens per process; the memo is cleared when full


class InvalidToken(Exception):
    """The token is malformed, forged, expired, not yet valid or meant for someone else."""


class KeyCache:
    """``kid`` → public key, loaded from ``auth.v_signing_keys``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.keys: dict[str, EllipticCurvePublicKey] = {}
        self.loaded_at = float("-inf")
        self._reloading = asyncio.Lock()
        self.verified: dict[str, tuple[str, float, dict[str, Any]]] = {}  # token → (kid, until, claims)

    async def _reload(self) -> None:
        rows = await self.pool.fetch("SELECT kid, public_pem FROM auth.v_signing_keys")
        keys = {}
        for row in rows:
            key = load_pem_public_key(row["public_pem"].encode())
            if isinstance(key, EllipticCurvePublicKey):
                keys[row["kid"]] = key
        self.keys, self.loaded_at = keys, time.monotonic()

    async def get(self, kid: str) -> EllipticCurvePublicKey | None:
        """The public key ``kid``, or ``None`` if the auth service does not publish it."""
        if self._stale(kid):
            async with self._reloading:
                if self._stale(kid):  # not already reloaded by the request we waited for
                    await self._reload()
        return self.keys.get(kid)

    def _stale(self, kid: str) -> bool:
        age = time.monotonic() - self.loaded_at
        return age > RELOAD_EVERY or (kid not in self.keys and age > MIN_RELOAD_GAP)


def _check_access(access: Any) -> list[dict[str, Any]]:
    if not isinstance(access, list):
        raise InvalidToken("the access claim is not a list")
    for entry in access:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("type"), str)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("actions"), list)
            and all(isinstance(a, str) for a in entry["actions"])
        )
        if not ok:
            raise InvalidToken("an access entry is not {type, name, actions}")
    return access


async def verify(token: str, keys: KeyCache, settings: AuthSettings) -> dict[str, Any]:
    """The verified claims of ``token``. Raises ``InvalidToken`` with a short reason."""
    hit = keys.verified.get(token)
    if hit is not None:
        kid, until, claims = hit
        if time.time() <= until and await keys.get(kid) is not None:
            return claims
        del keys.verified[token]
    claims = await _verify(token, keys, settings)
    if len(keys.verified) >= MAX_VERIFIED:
        keys.verified.clear()
    keys.verified[token] = (jwt.get_unverified_header(token)["kid"], float(claims["exp"]) + LEEWAY, claims)
    return claims


async def _verify(token: str, keys: KeyCache, settings: AuthSettings) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    kid = header.get("kid")
    if header.get("alg") != "ES256" or not isinstance(kid, str):
        raise InvalidToken("the token must be ES256 with a kid")
    key = await keys.get(kid)
    if key is None:
        raise InvalidToken("the token was signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["ES256"],
            audience=settings.service,
            issuer=settings.issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("the token is not valid yet") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None
    _check_access(claims.get("access", []))
    return claims
