"""External URL derivation (berth_common.http.urls): trusted proxies, forwarded headers, override."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from berth_common.http.urls import client_host, external_base_url, is_trusted_peer
from berth_common.settings import Settings


def request(
    peer: str | None = "127.0.0.1", scheme: str = "http", host: str = "berth:5000", **headers: str
) -> Request:
    """A request arriving from ``peer`` over ``scheme`` with ``Host: host`` and ``headers``
    (``x_forwarded_host="a"`` becomes ``X-Forwarded-Host: a``)."""
    raw = [(b"host", host.encode())]
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": scheme,
            "path": "/v2/",
            "query_string": b"",
            "headers": raw,
            "server": ("berth", 5000),
            "client": (peer, 40000) if peer else None,
        }
    )


def settings(**values: object) -> Settings:
    """Settings with only ``values`` changed (no environment, no YAML)."""
    return Settings.model_construct(**{**Settings.model_construct().__dict__, **values})


FORWARDED = {"x_forwarded_proto": "https", "x_forwarded_host": "registry.example"}


def test_plain_request_uses_its_scheme_and_host() -> None:
    assert external_base_url(request(), settings()) == "http://berth:5000"
    assert (
        external_base_url(request(scheme="https", host="localhost:5443"), settings())
        == "https://localhost:5443"
    )


def test_trusted_proxy_headers_are_used() -> None:
    s = settings(trusted_proxies=["10.0.0.0/8"])
    assert external_base_url(request("10.1.2.3", **FORWARDED), s) == "https://registry.example"


def test_untrusted_peer_headers_are_ignored() -> None:
    s = settings(trusted_proxies=["10.0.0.0/8"])
    assert external_base_url(request("192.0.2.7", **FORWARDED), s) == "http://berth:5000"
    assert external_base_url(request(None, **FORWARDED), s) == "http://berth:5000"
    none = settings(trusted_proxies=[])
    assert external_base_url(request("127.0.0.1", **FORWARDED), none) == "http://berth:5000"


def test_loopback_is_trusted_by_default() -> None:
    assert Settings.model_fields["trusted_proxies"].default == ["127.0.0.0/8", "::1/128"]
    s = settings()
    assert external_base_url(request("127.0.0.1", **FORWARDED), s) == "https://registry.example"
    assert external_base_url(request("::1", **FORWARDED), s) == "https://registry.example"
    assert external_base_url(request("::ffff:127.0.0.1", **FORWARDED), s) == "https://registry.example"


def test_external_url_beats_everything() -> None:
    s = settings(external_url="https://reg.example:8443/", trusted_proxies=["0.0.0.0/0"])
    assert external_base_url(request("10.0.0.1", **FORWARDED), s) == "https://reg.example:8443"


def test_rightmost_value_is_the_nearest_proxys() -> None:
    r = request(x_forwarded_proto="http, https", x_forwarded_host="evil.example, registry.example")
    assert external_base_url(r, settings()) == "https://registry.example"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x_forwarded_proto": "gopher"}, "http://berth:5000"),
        ({"x_forwarded_host": 'evil"realm'}, "http://berth:5000"),
        ({"x_forwarded_host": "a b"}, "http://berth:5000"),
        ({"x_forwarded_host": "[::1]:8443"}, "http://[::1]:8443"),
        ({"x_forwarded_proto": "HTTPS"}, "https://berth:5000"),
        ({"x_forwarded_host": "reg.example", "x_forwarded_port": "8443"}, "http://reg.example:8443"),
        ({"x_forwarded_host": "reg.example", "x_forwarded_port": "80"}, "http://reg.example"),
        ({"x_forwarded_host": "reg.example:9000", "x_forwarded_port": "8443"}, "http://reg.example:9000"),
    ],
)
def test_malformed_or_partial_headers(headers: dict[str, str], expected: str) -> None:
    assert external_base_url(request(**headers), settings()) == expected


def test_trusted_proxies_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    monkeypatch.setenv("BERTH_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("BERTH_TRUSTED_PROXIES", "not-an-ip")
    with pytest.raises(ValueError):
        Settings()


def test_client_host_walks_forwarded_for_past_trusted_proxies() -> None:
    s = settings(trusted_proxies=["10.0.0.0/8", "127.0.0.0/8"])
    chain = {"x_forwarded_for": "198.51.100.9, 203.0.113.5, 10.0.0.2"}
    assert client_host(request("127.0.0.1", **chain), s) == "203.0.113.5"
    assert client_host(request("192.0.2.1", **chain), s) == "192.0.2.1"  # untrusted peer
    assert client_host(request("127.0.0.1"), s) == "127.0.0.1"
    assert client_host(request("127.0.0.1", x_forwarded_for="10.0.0.3"), s) == "10.0.0.3"
    assert client_host(request(None), s) == "unknown"
    assert is_trusted_peer(request("10.9.9.9"), s) and not is_trusted_peer(request("11.0.0.1"), s)
