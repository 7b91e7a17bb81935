"""Listing tags and repositories. OCI distribution spec v1.1, "Listing Tags" (end-8a, end-8b)
and Distribution's ``/v2/_catalog`` (same ``n``/``last``/``Link`` pagination)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.spec.helpers import OCI_MANIFEST, assert_error, push_image, push_manifest

LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
TAGS = ["v1.0", "latest", "B", "a", "10", "9", "v1.0-rc1", "_x", "Zeta"]


def next_link(response: httpx.Response) -> str | None:
    """The target of ``Link: <url>; rel="next"`` (RFC 5988), or None."""
    match = LINK_NEXT.search(response.headers.get("link", ""))
    return match.group(1) if match else None


async def walk(client: httpx.AsyncClient, url: str, key: str) -> tuple[list[str], int]:
    """Follow ``rel="next"`` links from ``url``; returns all ``key`` items and the page count."""
    items: list[str] = []
    pages = 0
    next_url: str | None = url
    while next_url and pages < 1000:
        r = await client.get(next_url)
        assert r.status_code == 200, r.text
        items += r.json()[key] or []
        pages += 1
        next_url = next_link(r)
    return items, pages


async def tag_all(client: httpx.AsyncClient, repo: str, tags: list[str]) -> None:
    """Push one image and give it every tag of ``tags``."""
    image = await push_image(client, repo, tags[0])
    for tag in tags[1:]:
        assert (await push_manifest(client, repo, tag, image.body, OCI_MANIFEST)).status_code == 201


def is_spec_order(tags: list[str]) -> bool:
    """Lexical (case-insensitive) or ASCIIbetical order, as the spec allows either."""
    return tags in (sorted(tags), sorted(tags, key=lambda t: (t.lower(), t)))


async def test_tags_list_has_name_and_all_tags(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS)
    r = await client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == repo
    assert sorted(body["tags"]) == sorted(TAGS)


@pytest.mark.berth_only  # Distribution 2.8 lists tags in storage order
async def test_tags_are_in_lexical_order(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS)
    tags = (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]
    assert is_spec_order(tags), tags


@pytest.mark.berth_only  # Distribution 2.8 ignores n and last on tags/list
async def test_tags_pagination_with_n_and_link(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS)
    full = (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]
    first = await client.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert first.json()["tags"] == full[:2]
    assert next_link(first)
    tags, pages = await walk(client, f"/v2/{repo}/tags/list?n=2", "tags")
    assert tags == full
    assert pages == 5


@pytest.mark.berth_only  # Distribution 2.8 ignores n and last on tags/list
async def test_tags_last_starts_after_the_given_tag(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS)
    full = (await client.get(f"/v2/{repo}/tags/list")).json()["tags"]
    r = await client.get(f"/v2/{repo}/tags/list", params={"n": 3, "last": full[2]})
    assert r.json()["tags"] == full[3:6]
    r = await client.get(f"/v2/{repo}/tags/list", params={"last": full[-2]})
    assert r.json()["tags"] == full[-1:]
    assert next_link(r) is None


@pytest.mark.berth_only  # Distribution 2.8 ignores n on tags/list
async def test_tags_n_zero_is_empty_without_link(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS[:3])
    r = await client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert r.status_code == 200
    assert r.json()["tags"] in ([], None)
    assert "link" not in r.headers


async def test_tags_n_larger_than_count_lists_all(client: httpx.AsyncClient, repo: str) -> None:
    await tag_all(client, repo, TAGS[:3])
    r = await client.get(f"/v2/{repo}/tags/list", params={"n": 100})
    assert sorted(r.json()["tags"]) == sorted(TAGS[:3])
    assert next_link(r) is None


async def test_tags_of_unknown_repository_is_name_unknown(client: httpx.AsyncClient, repo: str) -> None:
    assert_error(await client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


@pytest.mark.berth_only  # Distribution 2.8 ignores a malformed n (the spec leaves it undefined)
@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10"])
async def test_tags_bad_n_is_400(client: httpx.AsyncClient, repo: str, n: str) -> None:
    await tag_all(client, repo, TAGS[:2])
    r = await client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert r.status_code == 400
    assert r.json()["errors"]


async def test_catalog_lists_pushed_repositories_in_order(
    client: httpx.AsyncClient, repo: str, other_repo: str
) -> None:
    await push_image(client, repo, "v1")
    await push_image(client, other_repo, "v1")
    r = await client.get("/v2/_catalog")
    assert r.status_code == 200
    repos = r.json()["repositories"]
    assert {repo, other_repo} <= set(repos)
    assert repos == sorted(repos)


async def test_catalog_pagination(client: httpx.AsyncClient, repo: str, other_repo: str) -> None:
    await push_image(client, repo, "v1")
    await push_image(client, other_repo, "v1")
    full = (await client.get("/v2/_catalog")).json()["repositories"]
    first = await client.get("/v2/_catalog", params={"n": 1})
    assert first.json()["repositories"] == full[:1]
    assert (next_link(first) is not None) == (len(full) > 1)
    repos, _ = await walk(client, "/v2/_catalog?n=2", "repositories")
    assert repos == full
    at = full.index(repo)
    after = await client.get("/v2/_catalog", params={"n": 1, "last": repo})
    assert after.json()["repositories"] == full[at + 1 : at + 2]


async def test_catalog_n_zero_is_empty_without_link(client: httpx.AsyncClient, repo: str) -> None:
    await push_image(client, repo, "v1")
    r = await client.get("/v2/_catalog", params={"n": 0})
    assert r.status_code == 200
    assert r.json()["repositories"] in ([], None)
    assert "link" not in r.headers
