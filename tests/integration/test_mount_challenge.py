"""The 401 challenge of a cross-repository mount asks for pull on its source, as Distribution does.

OCI distribution spec v1.1.1, "Mounting a blob from another repository" (end-11), with the
Docker token protocol: a client that builds its token request from the challenge (the OCI
conformance suite, and any client that does not add the ``from`` repository itself) gets
``repository:<from>:pull`` in its token when the user may read the source, and so a ``201``
mount instead of a full re-upload. When the user may not read it, the token server leaves
that scope out and the answer stays the ``202`` upload session any missing blob gets: nothing
tells the two apart.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.auth_world import api, raw_client
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-mount-1"
BLOB = b"a layer mounted instead of uploaded again"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    """Feeds ``own`` (``dev`` may Add) and ``hidden`` (``dev`` may not read); the blob in both."""
    async with berth_app() as running:
        for feed in ("own", "hidden"):
            await running.create_feed(feed)
        await api(running, "POST", "/api/users", {"name": "dev", "password": PW})
        rule = {"principal_kind": "user", "principal": "dev", "feed": "own", "privilege": "add"}
        await api(running, "POST", "/api/privileges", rule)
        for repo in ("own/src", "hidden/src"):
            r = await running.client.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": digest()}, content=BLOB
            )
            assert r.status_code == 201, r.text
        yield running


def digest() -> str:
    """The digest of ``BLOB``."""
    return "sha256:" + hashlib.sha256(BLOB).hexdigest()


def challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge."""
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


async def mount_as_the_challenge_says(
    c: httpx.AsyncClient, target: str, source: str
) -> tuple[dict[str, str], httpx.Response]:
    """POST the mount with no token, fetch a token for the challenge's scope as ``dev``, retry.

    This is what the OCI conformance suite's client does. Returns (challenge, final answer).
    """
    url = f"/v2/{target}/blobs/uploads/"
    params = {"mount": digest(), "from": source}
    first = await c.post(url, params=params)
    assert first.status_code == 401
    asked = challenge(first)
    token = await c.get(
        "/token", params={"service": asked["service"], "scope": asked["scope"]}, auth=("dev", PW)
    )
    assert token.status_code == 200, token.text
    again = await c.post(url, params=params, headers={"Authorization": f"Bearer {token.json()['token']}"})
    return asked, again


async def test_challenge_asks_for_pull_on_the_source_and_the_mount_succeeds(berth: BerthApp) -> None:
    async with raw_client(berth) as c:
        asked, r = await mount_as_the_challenge_says(c, "own/dst1", "own/src")
        assert asked["scope"].split(" ") == ["repository:own/dst1:pull,push", "repository:own/src:pull"]
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/v2/own/dst1/blobs/{digest()}"
    head = await berth.client.head(f"/v2/own/dst1/blobs/{digest()}")
    assert head.status_code == 200


async def test_unreadable_source_still_202_and_indistinguishable(berth: BerthApp) -> None:
    """``hidden/src`` holds the blob, ``hidden/none`` does not exist: dev gets the same 202."""
    answers = []
    async with raw_client(berth) as c:
        for source in ("hidden/src", "hidden/none"):
            asked, r = await mount_as_the_challenge_says(c, "own/dst2", source)
            assert asked["scope"].split(" ") == ["repository:own/dst2:pull,push", f"repository:{source}:pull"]
            assert r.status_code == 202, r.text
            assert r.headers["location"].startswith("/v2/own/dst2/blobs/uploads/")
            answers.append({k for k in r.headers if k not in ("location", "docker-upload-uuid")})
    assert answers[0] == answers[1]
    assert (await berth.client.head(f"/v2/own/dst2/blobs/{digest()}")).status_code == 404


@pytest.mark.parametrize("source", ["", "Not/A/Name", 'own/src",scope="registry:catalog:*', "own/dst3"])
async def test_challenge_names_only_valid_other_sources(berth: BerthApp, source: str) -> None:
    """A ``from`` that is no repository name (or the target itself) adds nothing to the challenge."""
    async with raw_client(berth) as c:
        r = await c.post("/v2/own/dst3/blobs/uploads/", params={"mount": digest(), "from": source})
        assert r.status_code == 401
        assert challenge(r)["scope"] == "repository:own/dst3:pull,push"


async def test_plain_upload_challenge_is_unchanged(berth: BerthApp) -> None:
    async with raw_client(berth) as c:
        r = await c.post("/v2/own/dst4/blobs/uploads/", params={"from": "own/src"})
        assert challenge(r)["scope"] == "repository:own/dst4:pull,push"
