"""API version check. OCI distribution spec v1.1, "Determining Support" (end-1) and the legacy
``Docker-Distribution-API-Version`` header that Docker clients look for."""

from __future__ import annotations

import httpx


async def test_base_endpoint_answers_200_with_api_version(client: httpx.AsyncClient) -> None:
    r = await client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_base_endpoint_without_trailing_slash_is_not_a_server_error(client: httpx.AsyncClient) -> None:
    r = await client.get("/v2")
    assert r.status_code < 500
