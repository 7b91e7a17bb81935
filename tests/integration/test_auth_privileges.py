"""The privilege matrix (issue 3 §4): identity x {its feed, another feed} x operation.

Every row sets up one identity (a user with one privilege, none, a restriction, anonymous, a
group member, API keys) and checks pull, push of a new tag, overwrite of an existing tag,
delete and whether ``/v2/_catalog`` lists the repository — with exact status and error code.
The same table is in ``docs/SECURITY.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.auth_world import (
    api,
    client,
    digest_of,
    manifest,
    put_manifest,
    seed_repository,
)
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-matrix-1"
OPS = ("pull", "push", "overwrite", "delete", "catalog")
NONE = ("401", "401", "401", "401", "hidden")
VIEW = ("200", "401", "401", "401", "listed")
ADD = ("200", "201", "403", "401", "listed")
OVERWRITE = ("200", "201", "201", "401", "listed")
DELETE = ("200", "401", "401", "202", "listed")
ALL = ("200", "201", "201", "202", "listed")

# case: (its feed, expected on its feed, expected on the other feed)
MATRIX: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "none": ("own", NONE, NONE),
    "view": ("own", VIEW, NONE),
    "add": ("own", ADD, NONE),
    "overwrite": ("own", OVERWRITE, NONE),
    "delete": ("own", DELETE, NONE),
    "manage": ("own", ALL, NONE),
    "admin": ("own", ALL, ALL),
    "deny": ("own", NONE, ALL),
    "anonymous": ("pub", VIEW, NONE),
    "group": ("own", ADD, NONE),
    "key": ("own", ADD, NONE),
    "key-limited": ("own", VIEW, NONE),
}


@dataclass
class World:
    """The running Berth and a logged-in client per case."""

    berth: BerthApp
    clients: dict[str, httpx.AsyncClient]


async def _identity(berth: BerthApp, case: str) -> tuple[str | None, str | None]:
    if case == "anonymous":
        return None, None
    if case.startswith("key"):
        body = (
            {"owner": None, "feeds": ["own"], "privileges": ["add"]}
            if case == "key"
            else {"owner": "admin", "feeds": ["own"], "privileges": ["view"]}
        )
        return "api", (await api(berth, "POST", "/api/keys", body))["key"]
    user = f"u-{case}"
    await api(berth, "POST", "/api/users", {"name": user, "password": PW})
    rule = {"principal_kind": "user", "principal": user, "feed": "own"}
    if case in ("view", "add", "overwrite", "delete", "manage"):
        await api(berth, "POST", "/api/privileges", {**rule, "privilege": case})
    elif case == "admin":
        await api(berth, "POST", "/api/privileges", {**rule, "feed": None, "privilege": "admin"})
    elif case == "deny":
        await api(berth, "POST", "/api/privileges", {**rule, "feed": None, "privilege": "manage"})
        await api(berth, "POST", "/api/privileges", {**rule, "privilege": "view", "effect": "deny"})
    elif case == "group":
        await api(berth, "POST", "/api/groups", {"name": "builders"})
        await api(berth, "POST", "/api/groups/builders/members", {"user": user})
        await api(
            berth,
            "POST",
            "/api/privileges",
            {"principal_kind": "group", "principal": "builders", "feed": "own", "privilege": "add"},
        )
    return user, PW


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    """Feeds ``own``, ``other`` (private) and ``pub`` (public), each with ``FEED/base``."""
    async with berth_app() as berth:
        for feed in ("own", "other", "pub"):
            await berth.create_feed(feed, public=feed == "pub")
            await seed_repository(berth, f"{feed}/base")
            for case in MATRIX:
                assert (
                    await put_manifest(berth.client, f"{feed}/base", f"ow-{case}", manifest("A"))
                ).status_code == 201
                assert (
                    await put_manifest(
                        berth.client, f"{feed}/base", digest_of(manifest(case)), manifest(case)
                    )
                ).status_code == 201
        clients = {case: client(berth, *await _identity(berth, case)) for case in MATRIX}
        yield World(berth, clients)
        for c in clients.values():
            await c.aclose()


def _expect(response: httpx.Response, expected: str) -> None:
    assert str(response.status_code) == expected, response.text
    if expected == "401":
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"].startswith('Bearer realm="http://berth.test/token"')
    if expected == "403":
        assert response.json()["errors"][0]["code"] == "DENIED"


async def _run(c: httpx.AsyncClient, case: str, feed: str, op: str) -> httpx.Response:
    repo = f"{feed}/base"
    if op == "pull":
        return await c.get(f"/v2/{repo}/manifests/base")
    if op == "push":
        return await put_manifest(c, repo, f"new-{case}", manifest("A"))
    if op == "overwrite":
        return await put_manifest(c, repo, f"ow-{case}", manifest(case))
    if op == "delete":
        return await c.delete(f"/v2/{repo}/manifests/{digest_of(manifest(case))}")
    return await c.get("/v2/_catalog")


CASES = [(case, side, op) for case in MATRIX for side in ("its", "other") for op in OPS]


@pytest.mark.parametrize(("case", "side", "op"), CASES, ids=["-".join(c) for c in CASES])
async def test_privilege_matrix(world: World, case: str, side: str, op: str) -> None:
    its, on_its, on_other = MATRIX[case]
    feed = its if side == "its" else ("other" if its == "own" else "own")
    expected = (on_its if side == "its" else on_other)[OPS.index(op)]
    response = await _run(world.clients[case], case, feed, op)
    if op == "catalog":
        assert response.status_code == 200, response.text
        listed = f"{feed}/base" in response.json()["repositories"]
        assert listed == (expected == "listed"), response.json()
    else:
        _expect(response, expected)
