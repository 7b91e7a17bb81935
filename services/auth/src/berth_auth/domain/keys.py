"""Token signing keys (ES256, P-256): creation, rotation with overlap, loading.

Private keys live only in ``auth.signing_keys`` (PKCS#8 PEM, encrypted with
``auth.key_secret`` when set); the event ``signingkey.created`` carries the public key only.
Tokens are signed with the newest key whose ``retire_at`` is unset. Rotation creates a new key
and retires the old one after an overlap (≥ the token lifetime) in which both verify
(``auth.v_signing_keys`` lists both until then).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from berth_common.db import keeps_session_state
from berth_common.events import Metadata
from berth_common.events.identities import SigningKeyCreated
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.settings import AuthSettings

_cache: dict[str, ec.EllipticCurvePrivateKey] = {}


def _kid(public_pem: bytes) -> str:
    return "ES256-" + hashlib.sha256(public_pem).hexdigest()[:16]


async def create_key(
    store: EventStore,
    settings: AuthSettings,
    *,
    retire_others_after: float | None,
    meta: Metadata | None = None,
) -> str:
    """Create a signing key; with ``retire_others_after`` (seconds), retire the current ones then.

    Returns the new ``kid``.
    """
    private = ec.generate_private_key(ec.SECP256R1())
    secret = settings.key_secret
    encryption = (
        serialization.BestAvailableEncryption(secret.encode()) if secret else serialization.NoEncryption()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = _kid(public_pem)

    async def work(uow: UnitOfWork) -> None:
        now = datetime.now(UTC)
        if retire_others_after is not None:
            await uow.conn.execute(
                "UPDATE auth.signing_keys SET retire_at = $1 WHERE retire_at IS NULL",
                now + timedelta(seconds=retire_others_after),
            )
        await uow.conn.execute(
            "INSERT INTO auth.signing_keys(kid, public_pem, private_pem, encrypted, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            kid,
            public_pem.decode(),
            private_pem,
            bool(secret),
            now,
        )
        await uow.emit(SigningKeyCreated(kid=kid, public_pem=public_pem.decode()))

    await run_with_retry(store, work, metadata=meta)
    return kid


async def ensure_key(store: EventStore, settings: AuthSettings) -> None:
    """Create the first signing key unless an active one exists (service start)."""
    async with store.pool.acquire() as conn:
        keeps_session_state(conn)
        await conn.execute("SELECT pg_advisory_lock(hashtext('berth.auth.keys'))")
        try:
            if not await conn.fetchval("SELECT 1 FROM auth.signing_keys WHERE retire_at IS NULL"):
                await create_key(store, settings, retire_others_after=None)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('berth.auth.keys'))")


async def signing_key(pool: asyncpg.Pool, settings: AuthSettings) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """``(kid, private key)`` of the newest active key. Raises ``LookupError`` if none."""
    row = await pool.fetchrow(
        "SELECT kid, private_pem, encrypted FROM auth.signing_keys"
        " WHERE retire_at IS NULL ORDER BY created_at DESC LIMIT 1"
    )
    if row is None:
        raise LookupError("no active signing key")
    key = _cache.get(row["kid"])
    if key is None:
        password = settings.key_secret.encode() if row["encrypted"] and settings.key_secret else None
        loaded = serialization.load_pem_private_key(row["private_pem"].encode(), password)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        key = _cache[row["kid"]] = loaded
    return row["kid"], key
