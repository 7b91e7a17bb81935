"""The first admin is created once; a database failure while creating it is not swallowed.

``bootstrap_admin`` (``berth_auth.app``) tolerates exactly one error: ``Conflict``, meaning
another process created the admin between its check and its write. Anything else — here the
event store refusing the append, as an outage would — must reach the caller (the service's
start), not leave Berth running without an admin.
"""

from __future__ import annotations

import asyncpg
import pytest

from berth_auth.app import bootstrap_admin
from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration


async def test_bootstrap_admin_does_not_swallow_a_database_failure() -> None:
    async with berth_app(with_bus=False) as berth:
        resources = berth.app.state.resources
        async with resources.pool.acquire() as conn:
            await conn.execute("DELETE FROM auth.users")  # a projection: as if no user existed yet
            await conn.execute(
                "CREATE FUNCTION public.refuse_appends() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'the event store is unavailable'; END $$;"
                " CREATE TRIGGER refuse_appends BEFORE INSERT ON eventstore.events"
                " FOR EACH ROW EXECUTE FUNCTION public.refuse_appends()"
            )
        try:
            with pytest.raises(asyncpg.PostgresError, match="the event store is unavailable"):
                await bootstrap_admin(resources)
        finally:
            async with resources.pool.acquire() as conn:
                await conn.execute("DROP TRIGGER refuse_appends ON eventstore.events")


async def test_bootstrap_admin_creates_nothing_when_a_user_exists() -> None:
    async with berth_app(with_bus=False) as berth:
        resources = berth.app.state.resources
        before = await resources.pool.fetchval("SELECT count(*) FROM eventstore.events")
        assert await bootstrap_admin(resources) is None
        assert await resources.pool.fetchval("SELECT count(*) FROM eventstore.events") == before
