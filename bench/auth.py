"""Request headers per registry: anonymous bearer tokens for Berth, nothing for Distribution.

Berth requires the Docker token flow on every ``/v2/`` request; the benchmark fetches one
anonymous token per scope set (``GET /token``) and reuses it until shortly before it expires,
as a real client does. Distribution runs without auth, so its headers are empty.
"""

from __future__ import annotations

import threading
import time

import httpx

REFRESH_MARGIN = 60.0  # seconds before expiry at which a token is fetched again


class Tokens:
    """Anonymous tokens of one Berth server, cached by scope set. Thread-safe."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._cache: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def token(self, *scopes: str) -> str | None:
        """A token granting ``scopes`` (``repository:NAME:pull,push`` …); ``None`` without auth."""
        if self.url is None:
            return None
        with self._lock:
            hit = self._cache.get(scopes)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        params: list[tuple[str, str | int | float | bool | None]] = [("service", "berth")]
        params += [("scope", s) for s in scopes]
        r = httpx.get(f"{self.url}/token", params=params, timeout=30)
        r.raise_for_status()
        body = r.json()
        expires = time.monotonic() + float(body.get("expires_in", 300)) - REFRESH_MARGIN
        with self._lock:
            self._cache[scopes] = (expires, body["token"])
        return str(body["token"])

    def headers(self, *scopes: str) -> dict[str, str]:
        """``{"Authorization": "Bearer …"}`` for ``scopes``, or ``{}`` without auth."""
        token = self.token(*scopes)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def repo(self, name: str, actions: str = "pull,push") -> dict[str, str]:
        """Headers for ``repository:NAME:ACTIONS``."""
        return self.headers(f"repository:{name}:{actions}")
