"""Tag parameters (``PUT …/manifests/<digest>?tag=…``, spec main) need the privileges of a tag
push: Add for new tags, Overwrite to move an existing one; a refused request sets no tag."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.auth_world import api, client, digest_of, manifest, seed_repository
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-tags-1"
TYPE = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    """Feed ``own`` with ``own/base`` (tag ``base``); users ``adder`` (Add) and ``mover`` (Overwrite)."""
    async with berth_app() as running:
        await running.create_feed("own")
        await seed_repository(running, "own/base")
        for user, privilege in (("adder", "add"), ("mover", "overwrite")):
            await api(running, "POST", "/api/users", {"name": user, "password": PW})
            rule = {"principal_kind": "user", "principal": user, "feed": "own", "privilege": privilege}
            await api(running, "POST", "/api/privileges", rule)
        yield running


async def _put(berth: BerthApp, user: str, body: bytes, tags: list[str]) -> tuple[int, str, list[str]]:
    async with client(berth, user, PW) as c:
        r = await c.put(
            f"/v2/own/base/manifests/{digest_of(body)}",
            params=[("tag", t) for t in tags],
            content=body,
            headers={"Content-Type": TYPE},
        )
        code = r.json()["errors"][0]["code"] if r.status_code >= 400 else ""
        return r.status_code, code, r.headers.get_list("oci-tag")


async def _tag(berth: BerthApp, tag: str) -> str | None:
    r = await berth.client.head(f"/v2/own/base/manifests/{tag}", headers={"Accept": TYPE})
    return r.headers.get("docker-content-digest") if r.status_code == 200 else None


async def test_add_may_create_tags(berth: BerthApp) -> None:
    body = manifest("adder-new")
    assert await _put(berth, "adder", body, ["fresh1", "fresh2"]) == (201, "", ["fresh1", "fresh2"])
    assert await _tag(berth, "fresh2") == digest_of(body)


async def test_moving_a_tag_needs_overwrite_and_sets_nothing_when_refused(berth: BerthApp) -> None:
    before = await _tag(berth, "base")
    body = manifest("adder-move")
    assert await _put(berth, "adder", body, ["brandnew", "base"]) == (403, "DENIED", [])
    assert await _tag(berth, "base") == before
    assert await _tag(berth, "brandnew") is None
    status, _, tags = await _put(berth, "mover", body, ["brandnew", "base"])
    assert (status, tags) == (201, ["brandnew", "base"])
    assert await _tag(berth, "base") == await _tag(berth, "brandnew") == digest_of(body)
