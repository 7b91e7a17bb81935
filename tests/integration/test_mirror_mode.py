"""Mirror mode (docs/ARCHITECTURE.md, "Mirror mode"): names whose first component is not a feed
are served from the default feed, with its privileges; a feed's name always wins; without a
default feed a single-component name says how to configure one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import jwt
import pytest

from tests.integration.auth_world import api, client, raw_client
from tests.integration.connector_world import berth_with_key, connect, fresh, seed
from tests.spec.helpers import digest_of, get_manifest, push_image
from tests.support.berth_app import BerthApp, berth_app
from tests.support.upstream import Distribution, distribution

pytestmark = pytest.mark.integration
HUB = "hub"
PW = "pw-mirror-1"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with distribution(tmp_path_factory.mktemp("up")) as running:
        yield running


@pytest.fixture(scope="module")
async def berth(upstream: Distribution) -> AsyncIterator[BerthApp]:
    async with berth_with_key(default_feed=HUB) as running:
        await connect(running, HUB, upstream.url, namespace="library")
        await api(running, "POST", "/api/users", {"name": "viewer", "password": PW})
        await api(running, "POST", "/api/users", {"name": "stranger", "password": PW})
        grant = {"principal_kind": "user", "principal": "viewer", "privilege": "view", "feed": HUB}
        await api(running, "POST", "/api/privileges", grant)
        yield running


async def test_docker_hub_names_are_served_from_the_default_feed(
    berth: BerthApp, upstream: Distribution
) -> None:
    image = fresh("busybox")
    pushed = await seed(upstream.url, f"library/{image}")
    r = await get_manifest(berth.client, f"library/{image}", "latest")
    assert r.status_code == 200 and r.content == pushed.body
    layer = await berth.client.get(f"/v2/library/{image}/blobs/{digest_of(pushed.layers[0])}")
    assert layer.content == pushed.layers[0]
    single = await get_manifest(berth.client, image, "latest")  # Docker Hub's rule: library/<name>
    assert single.status_code == 200 and single.content == pushed.body  # repository hub/<image>
    again = await berth.client.get(f"/v2/{image}/blobs/{digest_of(pushed.layers[0])}")
    assert again.content == pushed.layers[0]  # the store has it: linked, not fetched again
    tags = (await berth.client.get(f"/api/repositories/{HUB}/library/{image}/tags")).json()
    assert [t["tag"] for t in tags] == ["latest"]
    listed = await berth.client.get(f"/v2/library/{image}/tags/list")
    assert listed.json() == {"name": f"library/{image}", "tags": ["latest"]}
    explicit = await get_manifest(berth.client, f"{HUB}/library/{image}", "latest")
    assert explicit.content == pushed.body
    assert upstream.count("GET", f"/v2/library/{image}/manifests/latest") == 2  # two repositories
    assert upstream.count("GET", f"/v2/library/{image}/blobs/{digest_of(pushed.layers[0])}") == 1


async def test_a_feed_name_wins_over_an_image_path(berth: BerthApp, upstream: Distribution) -> None:
    namespace, image = fresh("team"), fresh("app")
    pushed = await seed(upstream.url, f"{namespace}/{image}")
    assert (await get_manifest(berth.client, f"{namespace}/{image}", "latest")).content == pushed.body
    await berth.create_feed(namespace)
    r = await get_manifest(berth.client, f"{namespace}/{image}", "latest")  # now the feed's
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    still = await get_manifest(berth.client, f"{HUB}/{namespace}/{image}", "latest")
    assert still.content == pushed.body


async def test_pushes_through_mirror_names_land_in_the_default_feed(berth: BerthApp) -> None:
    image = fresh("own")
    pushed = await push_image(berth.client, f"{fresh('ns')}/{image}", "v1")
    assert pushed.digest
    single = await push_image(berth.client, image, "v1")
    r = await get_manifest(berth.client, f"{HUB}/{image}", "v1")
    assert r.content == single.body
    put = await berth.client.put(
        f"/v2/{image}/manifests/v2", content=single.body, headers={"Content-Type": single.media_type}
    )
    assert put.headers["location"] == f"/v2/{image}/manifests/{single.digest}"


async def test_token_scopes_for_mirror_names_follow_the_default_feeds_privileges(
    berth: BerthApp, upstream: Distribution
) -> None:
    image = fresh("busybox")
    await seed(upstream.url, f"library/{image}")
    async with raw_client(berth) as c:
        r = await c.get("/token", params={"service": "berth", "scope": f"repository:library/{image}:pull"},
                        auth=("viewer", PW))  # fmt: skip
        access = jwt.decode(r.json()["token"], options={"verify_signature": False})["access"]
        assert access == [{"type": "repository", "name": f"library/{image}", "actions": ["pull"]}]
    async with client(berth, "viewer", PW) as viewer:
        assert (await get_manifest(viewer, f"library/{image}", "latest")).status_code == 200
    async with client(berth, "stranger", PW) as stranger:
        r = await get_manifest(stranger, f"library/{image}", "other")
        assert r.status_code == 401
    assert upstream.count("GET", f"/v2/library/{image}/manifests/other") == 0  # never asked


async def test_without_a_default_feed_a_single_name_says_how_to_configure_one() -> None:
    async with berth_app() as plain:
        r = await get_manifest(plain.client, "busybox", "latest")
        assert r.status_code == 400, r.text
        error = r.json()["errors"][0]
        assert error["code"] == "NAME_INVALID" and "BERTH_DEFAULT_FEED" in error["message"]
        r = await get_manifest(plain.client, "library/busybox", "latest")
        assert r.status_code == 404 and "BERTH_DEFAULT_FEED" in r.json()["errors"][0]["message"]
