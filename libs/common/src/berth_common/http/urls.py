"""External URLs: what clients see, for ``WWW-Authenticate`` realms and ``Location`` headers.

The single place where TLS and proxy settings plug in (DESIGN §4, issue 3 §3).
"""

from __future__ import annotations

from starlette.requests import Request

from berth_common.settings import Settings


def external_base_url(request: Request, settings: Settings) -> str:
    """``settings.external_url`` if set, else ``scheme://host[:port]`` of ``request``; no slash at the end."""
    if settings.external_url:
        return settings.external_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"
