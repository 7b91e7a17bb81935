"""Routes no other test drove, and proof that each revoking admin call takes access away.

``HEAD /v2/``; the upload POST without its trailing slash; ``GET /api/feeds/<feed>``; the
identity listings (``GET /api/users``, ``/api/groups``, ``/api/privileges``, ``/api/keys``); and
the calls that take access away — disabling a user, removing a group member, deleting a
privilege, revoking an API key — each checked by a pull that worked before and is refused
after (a fresh token each time: a revoke that silently failed would leave the pull working).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.auth_world import CONFIG, CONFIG_DIGEST, api, client, raw_client, seed_repository
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-admin-routes-1"
REPO = "routes/img"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    """Feed ``routes`` (private) with ``routes/img:base``."""
    async with berth_app(with_bus=False) as running:
        await running.create_feed("routes")
        await seed_repository(running, REPO)
        yield running


async def pull_status(berth: BerthApp, user: str, password: str) -> int:
    """The status of ``GET`` of ``routes/img:base`` by ``user``, with a token fetched now."""
    async with client(berth, user, password) as c:
        return (await c.get(f"/v2/{REPO}/manifests/base")).status_code


async def new_user(berth: BerthApp, name: str) -> None:
    await api(berth, "POST", "/api/users", {"name": name, "password": PW})


async def grant_view(berth: BerthApp, kind: str, principal: str) -> str:
    body = {"principal_kind": kind, "principal": principal, "privilege": "view", "feed": "routes"}
    return str((await api(berth, "POST", "/api/privileges", body))["rule_id"])


async def test_head_of_the_base_is_401_then_200_without_a_body(berth: BerthApp) -> None:
    async with raw_client(berth) as anonymous:
        r = await anonymous.head("/v2/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="http://berth.test/token"')
    assert r.content == b""
    r = await berth.client.head("/v2/")
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_upload_post_without_trailing_slash_opens_a_session(berth: BerthApp) -> None:
    r = await berth.client.post(f"/v2/{REPO}/blobs/uploads")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert location.startswith(f"/v2/{REPO}/blobs/uploads/")
    r = await berth.client.put(location, params={"digest": CONFIG_DIGEST}, content=CONFIG)
    assert r.status_code == 201, r.text
    r = await berth.client.post(f"/v2/{REPO}/blobs/uploads?digest={CONFIG_DIGEST}", content=CONFIG)
    assert r.status_code == 201, r.text  # the monolithic form too


async def test_get_one_feed(berth: BerthApp) -> None:
    feed = await api(berth, "GET", "/api/feeds/routes")
    assert (feed["name"], feed["public"]) == ("routes", False)
    missing = await berth.client.get("/api/feeds/nosuchfeed")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_listings_show_what_was_created(berth: BerthApp) -> None:
    await new_user(berth, "lister")
    await api(berth, "POST", "/api/groups", {"name": "listers"})
    await api(berth, "POST", "/api/groups/listers/members", {"user": "lister"})
    rule_id = await grant_view(berth, "group", "listers")
    key = await api(berth, "POST", "/api/keys", {"owner": "lister", "feeds": ["routes"], "description": "ci"})
    users = {u["name"]: u for u in await api(berth, "GET", "/api/users")}
    assert (users["lister"]["disabled"], users["lister"]["groups"]) == (False, ["listers"])
    assert not any("password" in field for u in users.values() for field in u)
    groups = {g["name"]: g["members"] for g in await api(berth, "GET", "/api/groups")}
    assert groups["listers"] == ["lister"]
    rules = {r["rule_id"]: r for r in await api(berth, "GET", "/api/privileges")}
    assert (rules[rule_id]["principal_kind"], rules[rule_id]["principal"]) == ("group", "listers")
    assert (rules[rule_id]["feed"], rules[rule_id]["privilege"], rules[rule_id]["effect"]) == (
        "routes",
        "view",
        "grant",
    )
    keys = {k["key_id"]: k for k in await api(berth, "GET", "/api/keys")}
    listed = keys[key["key_id"]]
    assert (listed["owner"], listed["feeds"], listed["description"], listed["revoked"]) == (
        "lister",
        ["routes"],
        "ci",
        False,
    )
    assert key["key"] not in str(keys)  # the key is shown once, at creation


async def test_disabling_a_user_takes_their_access_away(berth: BerthApp) -> None:
    await new_user(berth, "dis")
    await grant_view(berth, "user", "dis")
    assert await pull_status(berth, "dis", PW) == 200
    await api(berth, "POST", "/api/users/dis/disable")
    assert await pull_status(berth, "dis", PW) == 401
    users = {u["name"]: u for u in await api(berth, "GET", "/api/users")}
    assert users["dis"]["disabled"] is True


async def test_removing_a_group_member_takes_the_groups_access_away(berth: BerthApp) -> None:
    await new_user(berth, "mem")
    await api(berth, "POST", "/api/groups", {"name": "viewers"})
    await api(berth, "POST", "/api/groups/viewers/members", {"user": "mem"})
    await grant_view(berth, "group", "viewers")
    assert await pull_status(berth, "mem", PW) == 200
    await api(berth, "DELETE", "/api/groups/viewers/members/mem")
    assert await pull_status(berth, "mem", PW) == 401
    groups = {g["name"]: g["members"] for g in await api(berth, "GET", "/api/groups")}
    assert groups["viewers"] == []


async def test_deleting_a_privilege_takes_access_away(berth: BerthApp) -> None:
    await new_user(berth, "priv")
    rule_id = await grant_view(berth, "user", "priv")
    assert await pull_status(berth, "priv", PW) == 200
    await api(berth, "DELETE", f"/api/privileges/{rule_id}")
    assert await pull_status(berth, "priv", PW) == 401
    assert rule_id not in {r["rule_id"] for r in await api(berth, "GET", "/api/privileges")}


async def test_revoking_an_api_key_takes_access_away(berth: BerthApp) -> None:
    await new_user(berth, "keyowner")
    await grant_view(berth, "user", "keyowner")
    key = await api(berth, "POST", "/api/keys", {"owner": "keyowner", "feeds": ["routes"]})
    assert await pull_status(berth, "api", key["key"]) == 200
    await api(berth, "DELETE", f"/api/keys/{key['key_id']}")
    assert await pull_status(berth, "api", key["key"]) == 401
    keys = {k["key_id"]: k for k in await api(berth, "GET", "/api/keys")}
    assert keys[key["key_id"]]["revoked"] is True


async def test_a_refused_body_says_which_field_and_why(berth: BerthApp) -> None:
    """A body the API's schema refuses is 400 BAD_REQUEST whose message names the field and the
    reason (the berth CLI prints only the message: it used to say just 'invalid request
    parameters' for ``berth feed create ''``); the fields stay in ``detail``."""
    r = await berth.client.post("/api/feeds", json={"name": ""})
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["code"] == "BAD_REQUEST"
    assert error["message"].startswith("invalid request parameters: body.name: ")
    assert "at least 1 character" in error["message"]
    assert error["detail"][0]["loc"] == ["body", "name"]
