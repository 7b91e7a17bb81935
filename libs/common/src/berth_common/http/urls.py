"""External URLs: what clients see, for ``WWW-Authenticate`` realms and any absolute URL we build.

The single place where TLS and proxy settings plug in (docs/DESIGN.md §4, issue 3 §3). Precedence:

1. ``settings.external_url`` when set (the operator knows best);
2. ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` (and ``X-Forwarded-Port``) — only when the
   connection's peer is in ``settings.trusted_proxies`` (IPs/CIDRs; default loopback, so
   ``berth serve proxy`` on the same machine works); of a comma-separated value the rightmost
   (the one the nearest proxy wrote) counts; malformed values are ignored;
3. the request itself: the connection's scheme (``https`` when uvicorn serves TLS) and ``Host``.

uvicorn's own proxy-header handling is off (``proxy_headers=False`` in ``berth``'s CLI): it
would rewrite the peer address before we could check it, and it trusts loopback regardless of
our setting. :func:`client_host` gives the client address behind trusted proxies instead.
``Location`` headers stay relative paths (docs/ARCHITECTURE.md), so they need none of this.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache

from starlette.requests import Request

from berth_common.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# host (name, IPv4, or [IPv6]) with an optional port; nothing that could end a header value
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def external_base_url(request: Request, settings: Settings) -> str:
    """The base URL clients use to reach Berth: ``scheme://host[:port]``, no slash at the end.

    ``request`` is the incoming request; ``settings`` gives ``external_url`` and
    ``trusted_proxies``. Never raises: untrusted or malformed forwarded headers are ignored.
    """
    if settings.external_url:
        return settings.external_url.rstrip("/")
    scheme, host = request.url.scheme, request.headers.get("host") or request.url.netloc
    if is_trusted_peer(request, settings):
        scheme = _forwarded_scheme(request) or scheme
        host = _forwarded_host(request, scheme) or host
    return f"{scheme}://{host}"


def is_trusted_peer(request: Request, settings: Settings) -> bool:
    """Whether the connection's peer address is in ``settings.trusted_proxies``."""
    peer = request.client.host if request.client else None
    return peer is not None and _in_networks(peer, _networks(tuple(settings.trusted_proxies)))


def client_host(request: Request, settings: Settings) -> str:
    """The client's IP address: the peer, or behind trusted proxies the ``X-Forwarded-For`` entry
    nearest to us that is not itself a trusted proxy. ``"unknown"`` when there is no peer.
    """
    peer = request.client.host if request.client else "unknown"
    if not is_trusted_peer(request, settings):
        return peer
    networks = _networks(tuple(settings.trusted_proxies))
    chain = [a.strip() for a in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for address in reversed([a for a in chain if a]):
        if not _in_networks(address, networks):
            return address
    return chain[0] if chain and chain[0] else peer


def _last(request: Request, name: str) -> str | None:
    """The rightmost comma-separated value of header ``name`` (all its occurrences), or None."""
    values = [v.strip() for v in ",".join(request.headers.getlist(name)).split(",")]
    values = [v for v in values if v]
    return values[-1] if values else None


def _forwarded_scheme(request: Request) -> str | None:
    proto = (_last(request, "x-forwarded-proto") or "").lower()
    return proto if proto in _DEFAULT_PORTS else None


def _forwarded_host(request: Request, scheme: str) -> str | None:
    host = _last(request, "x-forwarded-host")
    if host is None or not _HOST.match(host):
        return None
    port = _last(request, "x-forwarded-port")
    has_port = host.rsplit("]", 1)[-1].count(":") == 1
    if port and port.isdigit() and not has_port and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return host


@lru_cache(maxsize=16)
def _networks(entries: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)
