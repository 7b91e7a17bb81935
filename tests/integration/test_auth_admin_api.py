"""The auth service's admin API for the CLI (issue 13 §2): the password policy, refresh tokens
listed and revoked by an admin or given up by their holder (RFC 7009, ``berth logout``),
privileges filtered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.auth_world import api, client, raw_client
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-admin-api-1"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    """Users ``bob`` and ``carol``, feeds ``dmc`` and ``other``."""
    async with berth_app(with_bus=False) as running:
        for feed in ("dmc", "other"):
            await running.create_feed(feed)
        for user in ("bob", "carol"):
            await api(running, "POST", "/api/users", {"name": user, "password": PW})
        yield running


async def login(berth: BerthApp, user: str) -> str:
    """A refresh token of ``user`` (the OAuth2 password grant, as ``berth login`` does)."""
    async with raw_client(berth) as c:
        form = {"grant_type": "password", "username": user, "password": PW, "service": "berth"}
        r = await c.post("/token", data=form)
    assert r.status_code == 200, r.text
    return str(r.json()["refresh_token"])


async def refresh_status(berth: BerthApp, token: str) -> int:
    """The status of a refresh grant with ``token`` (200 while it is valid)."""
    async with raw_client(berth) as c:
        form = {"grant_type": "refresh_token", "refresh_token": token, "service": "berth"}
        return (await c.post("/token", data=form)).status_code


async def revoked_events(berth: BerthApp) -> list[tuple[str, str]]:
    """``(token_id, actor)`` of every ``refreshtoken.revoked`` event, in order."""
    rows = await berth.app.state.resources.pool.fetch(
        "SELECT payload->>'token_id' AS token_id, metadata->>'actor' AS actor FROM eventstore.events"
        " WHERE type = 'refreshtoken.revoked' ORDER BY position"
    )
    return [(r["token_id"], r["actor"]) for r in rows]


def code_of(r: httpx.Response) -> str:
    return str(r.json()["errors"][0]["code"])


async def test_password_policy_is_enforced_by_the_api(berth: BerthApp) -> None:
    short = await berth.client.post("/api/users", json={"name": "dave", "password": "seven77"})
    assert short.status_code == 400 and code_of(short) == "PASSWORD_INVALID", short.text
    message = short.json()["errors"][0]["message"]
    assert "too short: 7 characters, at least 8" in message and "auth.min_password_length" in message
    passwd = await berth.client.put("/api/users/bob/password", json={"password": "short"})
    assert passwd.status_code == 400 and code_of(passwd) == "PASSWORD_INVALID"
    assert await refresh_status(berth, await login(berth, "bob")) == 200  # bob's password unchanged
    await api(berth, "POST", "/api/users", {"name": "dave", "password": "eight888"})


async def test_the_policy_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_AUTH__MIN_PASSWORD_LENGTH", "20")
    async with berth_app(with_bus=False) as running:
        assert running.settings.auth.min_password_length == 20
        r = await running.client.post("/api/users", json={"name": "erin", "password": "n" * 19})
        assert r.status_code == 400 and "at least 20" in r.text
        await api(running, "POST", "/api/users", {"name": "erin", "password": "n" * 20})


async def test_admin_lists_and_revokes_refresh_tokens(berth: BerthApp) -> None:
    first, second = await login(berth, "bob"), await login(berth, "bob")
    await login(berth, "carol")
    listed = await api(berth, "GET", "/api/refresh-tokens?user=bob")
    assert [t["subject"] for t in listed] == ["bob"] * len(listed) and len(listed) >= 2
    assert set(listed[0]) == {"token_id", "subject", "issued_at", "expires_at", "revoked"}
    everyone = {t["subject"] for t in await api(berth, "GET", "/api/refresh-tokens")}
    assert {"bob", "carol"} <= everyone
    newest = listed[-1]["token_id"]
    await api(berth, "DELETE", f"/api/refresh-tokens/{newest}")
    assert await refresh_status(berth, second) == 401
    assert await refresh_status(berth, first) == 200
    assert (newest, "admin") in await revoked_events(berth)
    answer = await api(berth, "DELETE", "/api/refresh-tokens?user=bob")
    assert newest not in answer["revoked"] and len(answer["revoked"]) == len(listed) - 1
    assert await refresh_status(berth, first) == 401
    assert await api(berth, "GET", "/api/refresh-tokens?user=bob") == []
    inactive = await api(berth, "GET", "/api/refresh-tokens?user=bob&all=true")
    assert len(inactive) == len(listed) and all(t["revoked"] for t in inactive)
    assert (await api(berth, "DELETE", "/api/refresh-tokens?user=bob"))["revoked"] == []


async def test_refresh_token_errors(berth: BerthApp) -> None:
    missing = await berth.client.delete("/api/refresh-tokens/t-nosuch")
    assert missing.status_code == 404 and code_of(missing) == "NAME_UNKNOWN"
    nobody = await berth.client.delete("/api/refresh-tokens?user=nosuch")
    assert nobody.status_code == 404 and "no user or API key 'nosuch'" in nobody.text
    unnamed = await berth.client.delete("/api/refresh-tokens")
    assert unnamed.status_code == 400
    async with client(berth, "bob", PW) as bob:
        assert (await bob.get("/api/refresh-tokens")).status_code == 401
        assert (await bob.delete("/api/refresh-tokens?user=carol")).status_code == 401


async def test_holder_gives_up_a_refresh_token(berth: BerthApp) -> None:
    """RFC 7009: ``POST /auth/revoke`` with the token revokes it; anything else is 200 too."""
    token = await login(berth, "carol")
    async with raw_client(berth) as c:
        for junk in ("", "br_nosuch", "\0"):
            assert (await c.post("/auth/revoke", data={"token": junk})).status_code == 200
        assert await refresh_status(berth, token) == 200
        assert (await c.post("/auth/revoke", data={"token": token})).status_code == 200
        assert (await c.post("/auth/revoke", data={"token": token})).status_code == 200
    assert await refresh_status(berth, token) == 401
    carol_revocations = [actor for _, actor in await revoked_events(berth) if actor == "carol"]
    assert carol_revocations == ["carol"]  # once, by its holder


async def test_privileges_filtered_by_feed_and_principal(berth: BerthApp) -> None:
    rules = [
        {"principal_kind": "user", "principal": "bob", "privilege": "view", "feed": "dmc"},
        {"principal_kind": "user", "principal": "carol", "privilege": "add", "feed": "other"},
        {"principal_kind": "everyone", "privilege": "view", "feed": None, "effect": "deny"},
    ]
    ids = [(await api(berth, "POST", "/api/privileges", rule))["rule_id"] for rule in rules]
    on_dmc = {r["rule_id"] for r in await api(berth, "GET", "/api/privileges?feed=dmc")}
    assert ids[0] in on_dmc and ids[2] in on_dmc and ids[1] not in on_dmc
    bobs = await api(berth, "GET", "/api/privileges?principal=user:bob")
    assert [r["rule_id"] for r in bobs] == [ids[0]]
    everyone = await api(berth, "GET", "/api/privileges?principal=everyone")
    assert [r["rule_id"] for r in everyone] == [ids[2]]
    for rule_id in ids:
        await api(berth, "DELETE", f"/api/privileges/{rule_id}")
