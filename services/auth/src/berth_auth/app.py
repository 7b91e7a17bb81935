"""The auth service: users, groups, API keys, feed privileges, token signing (docs/DESIGN.md §1, §4).

Routes: ``GET/POST /token`` and ``/auth/jwks.json`` (``routes/token.py``); ``POST /auth/revoke``
(``routes/revoke.py``); the admin JSON API ``/api/users|groups|privileges|keys|signing-keys``
(``routes/admin.py``) and ``/api/refresh-tokens`` (``routes/refresh.py``). ``SERVICE`` declares
it; ``start`` makes sure a signing key exists and creates the first admin
(``BERTH_ADMIN_PASSWORD`` or a generated password printed once).
"""

from __future__ import annotations

import secrets
import sys

import structlog
from anyio import to_thread
from fastapi import FastAPI

from berth_auth.domain import credentials, identities
from berth_auth.domain.keys import ensure_key
from berth_auth.projections import SPEC
from berth_auth.routes import admin, refresh, revoke, token
from berth_common.db import Migration, load_migrations
from berth_common.errors import Conflict
from berth_common.events import Metadata
from berth_common.eventstore import ProjectionSpec
from berth_common.http.service_app import ServiceSpec
from berth_common.runtime import Resources
from berth_common.settings import Settings

log = structlog.get_logger("berth.auth")


def migrations() -> list[Migration]:
    """The auth schema's migrations."""
    return load_migrations("auth", "berth_auth.migrations")


def projections() -> list[ProjectionSpec]:
    """The auth service's rebuildable projections."""
    return [SPEC]


def setup(app: FastAPI) -> None:
    """Mount the token endpoint, the JWKS and the identity admin API on ``app``."""
    app.include_router(token.router)
    app.include_router(revoke.router)
    app.include_router(admin.router)
    app.include_router(refresh.router)


async def bootstrap_admin(resources: Resources) -> str | None:
    """Create the first admin unless a user exists; returns the generated password, if any."""
    settings = resources.settings
    async with resources.pool.acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM auth.users LIMIT 1"):
            return None
    name = settings.auth.admin_user
    password = settings.admin_password or secrets.token_urlsafe(max(18, settings.auth.min_password_length))
    meta = Metadata(actor="berth")
    try:
        await identities.create_user(resources.store, name, password, meta=meta)
    except Conflict:  # another process created the admin between the check above and here
        return None
    await identities.grant(resources.store, "user", name, "admin", None, meta=meta)
    if len(password) < settings.auth.min_password_length:  # configuration, not the API: warn
        log.warning(
            "auth.admin_password_short",
            user=name,
            note="BERTH_ADMIN_PASSWORD is shorter than auth.min_password_length; change it with"
            " berth user passwd",
        )
    return None if settings.admin_password else password


async def start(resources: Resources, app: FastAPI) -> None:
    """Ensure a signing key, create the first admin (printing a generated password once), after
    the migrations."""
    await to_thread.run_sync(credentials.dummy_hash)  # made now, not in the first failed login
    await ensure_key(resources.store, resources.settings.auth)
    generated = await bootstrap_admin(resources)
    if generated is not None:
        user = resources.settings.auth.admin_user
        # The password goes to the terminal only, never into the structured log (collected).
        log.info(  # expected on a first start: not a warning
            "auth.admin_created",
            user=user,
            note="generated password printed once on stderr; BERTH_ADMIN_PASSWORD sets it",
        )
        print(
            f"berth: created admin user {user!r} with password {generated}"
            " (shown once; change it with berth user passwd)",
            file=sys.stderr,
            flush=True,
        )


SERVICE = ServiceSpec(
    name="auth", routes=setup, migrations=migrations, projections=projections, start=start, docs=True
)
"""The auth service, as the standalone app and the all-in-one wire it."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The standalone auth service (``berth serve auth``)."""
    return SERVICE.create_app(settings)
