"""The UI's side of the browse API's pagination: page parameters in, prev/next keys out."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.requests import Request


def page_params(request: Request, size: int) -> dict[str, str]:
    """The API query for the page the browser asks for (``q``, ``last`` or ``before``, ``n``)."""
    params = {"n": str(size)}
    for name in ("q", "last", "before"):
        value = request.query_params.get(name)
        if value:
            params[name] = value[:200]
    return params


@dataclass(frozen=True)
class Pages:
    """Where the previous and next pages start (``before``/``last`` keys) and how many in all."""

    prev: str | None = None
    next: str | None = None
    total: int = 0
    q: str = ""

    @classmethod
    def of(cls, response: httpx.Response, q: str = "") -> Pages:
        """From the API's ``Link`` and ``X-Total-Count`` headers."""
        total = response.headers.get("x-total-count", "")
        return cls(
            _param(response, "prev", "before"),
            _param(response, "next", "last"),
            int(total) if total.isdigit() else 0,
            q,
        )

    @classmethod
    def of_list(
        cls, items: list[object], request: Request, size: int, key: str
    ) -> tuple[list[object], Pages]:
        """Page a whole list the API returned (users, groups, keys) the same way, by ``key``."""
        q = request.query_params.get("q", "").lower()
        rows = sorted(
            (i for i in items if not q or q in str(_get(i, key)).lower()), key=lambda i: str(_get(i, key))
        )
        last, before = request.query_params.get("last"), request.query_params.get("before")
        if before:
            kept = [i for i in rows if str(_get(i, key)) < before][-size:]
        else:
            kept = [i for i in rows if not last or str(_get(i, key)) > last][:size]
        keys = [str(_get(i, key)) for i in rows]
        first_key = str(_get(kept[0], key)) if kept else None
        last_key = str(_get(kept[-1], key)) if kept else None
        prev = first_key if first_key and keys and keys[0] < first_key else None
        after = last_key if last_key and keys and keys[-1] > last_key else None
        return kept, cls(prev, after, len(rows), request.query_params.get("q", ""))


def _get(item: object, key: str) -> object:
    return item.get(key) if isinstance(item, dict) else getattr(item, key)


def _param(response: httpx.Response, rel: str, name: str) -> str | None:
    url = response.links.get(rel, {}).get("url")
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None
