"""``berth serve proxy`` (``berth.proxy``): routing, forwarded headers, pass-through responses.

The proxy runs in process (``httpx.ASGITransport``) in front of fake services
(``httpx.MockTransport``), so every assertion is about what crossed the proxy, with no I/O.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from berth.proxy import RoutingProxy, Upstreams

UPSTREAMS = Upstreams(
    api="http://api.internal:5001",
    blob="http://blob.internal:5002",
    auth="http://auth.internal:5003",
    ui="http://ui.internal:5005",
)


def proxy_client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    """A client whose requests go through the proxy to ``handler``'s fake services."""
    proxy = RoutingProxy(UPSTREAMS, transport=handler)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=proxy, client=("10.0.0.7", 4711)),
        base_url="http://registry.example:5000",
    )


def streamed(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A response whose body is a stream, as a real service's is (the proxy streams it on)."""
    data = json.dumps(body).encode() if body is not None else b""
    return httpx.Response(
        status, headers={"Content-Length": str(len(data)), **(headers or {})}, stream=httpx.ByteStream(data)
    )


async def echo(request: httpx.Request) -> httpx.Response:
    """A fake service answering with what it received (host, path, headers, body length)."""
    body = await request.aread()
    return streamed(
        200,
        {
            "upstream": request.url.host,
            "target": str(request.url.raw_path, "ascii"),
            "method": request.method,
            "length": len(body),
            "headers": {k.lower(): v for k, v in request.headers.items()},
        },
    )


async def test_routes_each_path_to_its_service() -> None:
    async with proxy_client(httpx.MockTransport(echo)) as client:
        cases = {
            "/v2/dmc/ubuntu/blobs/uploads/": "blob.internal",
            "/v2/dmc/ubuntu/manifests/trusty": "api.internal",
            "/token": "auth.internal",
            "/api/feeds": "api.internal",
            "/": "ui.internal",
            "/ui/feeds/dmc": "ui.internal",
            "/api/repositories/dmc/ui/history": "api.internal",
        }
        for path, upstream in cases.items():
            r = await client.get(path)
            assert r.status_code == 200
            assert r.json()["upstream"] == upstream, path


async def test_keeps_host_and_query_and_adds_forwarded_headers() -> None:
    async with proxy_client(httpx.MockTransport(echo)) as client:
        r = await client.get(
            "/token?service=berth&scope=repository:dmc/a:pull&scope=x",
            headers={
                "X-Forwarded-For": "192.0.2.1",
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-Proto": "https",
            },
        )
    seen = r.json()
    assert seen["target"] == "/token?service=berth&scope=repository:dmc/a:pull&scope=x"
    assert seen["headers"]["host"] == "registry.example:5000"
    # the proxy is the edge: a client cannot choose the forwarded host (the token realm)
    assert seen["headers"]["x-forwarded-host"] == "registry.example:5000"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-for"] == "10.0.0.7"


def test_behind_another_ingress_forwarded_headers_are_kept() -> None:
    from berth.proxy import forward_headers

    scope = {
        "headers": [
            (b"host", b"r.example"),
            (b"x-forwarded-host", b"outer.example"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"192.0.2.1"),
        ],
        "client": ("10.0.0.7", 1234),
        "scheme": "http",
    }
    headers = dict(forward_headers(scope, trust_forwarded=True))
    assert headers[b"x-forwarded-host"] == b"outer.example"
    assert headers[b"x-forwarded-proto"] == b"https"
    assert headers[b"x-forwarded-for"] == b"192.0.2.1, 10.0.0.7"


async def test_streams_request_bodies_with_their_length() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 65536

    async with proxy_client(httpx.MockTransport(echo)) as client:
        sized = await client.put("/v2/dmc/a/blobs/uploads/u1?digest=sha256:00", content=b"y" * 1000)
        chunked = await client.patch("/v2/dmc/a/blobs/uploads/u1", content=chunks())
    assert (sized.json()["length"], sized.json()["headers"]["content-length"]) == (1000, "1000")
    assert chunked.json()["length"] == 64 * 65536
    assert chunked.json()["upstream"] == "blob.internal"


async def test_passes_redirects_and_location_untouched() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return streamed(
            307,
            headers={
                "Location": "https://s3.example/bucket/blob?X-Amz-Signature=abc",
                "Docker-Content-Digest": "sha256:00",
            },
        )

    async with proxy_client(httpx.MockTransport(redirect)) as client:
        r = await client.get("/v2/dmc/a/blobs/sha256:00")
    assert r.status_code == 307
    assert r.headers["location"] == "https://s3.example/bucket/blob?X-Amz-Signature=abc"
    assert r.headers["docker-content-digest"] == "sha256:00"


async def test_unreachable_service_is_503_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with proxy_client(httpx.MockTransport(down)) as client:
        r = await client.get("/v2/")
    assert r.status_code == 503
    assert r.json()["errors"][0]["code"] == "UNAVAILABLE"


async def test_replicas_take_turns_and_a_refusing_one_is_skipped() -> None:
    """``--blob http://a,http://b``: requests alternate between the replicas; while one refuses
    connections (killed, restarting) the other answers every request without a body; one with a
    body that went to the refusing replica is a clean 503 (the body cannot be replayed)."""
    down: set[str] = set()

    async def replica(request: httpx.Request) -> httpx.Response:
        if request.url.host in down:
            raise httpx.ConnectError("connection refused", request=request)
        return await echo(request)

    upstreams = Upstreams(
        api="http://api.internal", blob="http://b1.internal, http://b2.internal/", auth="http://auth.internal"
    )
    proxy = RoutingProxy(upstreams, transport=httpx.MockTransport(replica))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://r.example") as c:
        path = "/v2/f/i/blobs/sha256:" + "a" * 64
        seen = [(await c.get(path)).json()["upstream"] for _ in range(4)]
        assert seen == ["b1.internal", "b2.internal", "b1.internal", "b2.internal"]
        down.add("b1.internal")
        seen = [(await c.get(path)).json()["upstream"] for _ in range(3)]
        assert seen == ["b2.internal"] * 3
        puts = [await c.put(path, content=b"body") for _ in range(2)]
        assert sorted(p.status_code for p in puts) == [200, 503]
        assert [p.json()["length"] for p in puts if p.status_code == 200] == [4]
        down.add("b2.internal")
        assert (await c.get(path)).status_code == 503
