"""Keyset pagination for the browse API (``/api/feeds…``, ``/api/repositories/…``).

A page is ``n`` keys after ``last`` (or, going back, the ``n`` keys before ``before``) in the
key's lexical (``COLLATE "C"``) order, optionally only keys containing ``q`` (case-insensitive).
One query gives the page's keys, whether keys precede and follow it (one index probe each) and
the number of matching keys, so a page of a feed with 10,000 repositories costs about as much
as one of a feed with ten (``bench/ui_pages.py``). The response is a JSON array with
``Link: <…?last=…>; rel="next"`` / ``<…?before=…>; rel="prev"`` (RFC 8288, as the registry's
tag listing) and ``X-Total-Count``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from berth_common.db import Connection
from berth_common.errors import PaginationNumberInvalid

DEFAULT_PAGE = 50
MAX_PAGE = 1000


@dataclass(frozen=True)
class PageQuery:
    """``n`` (1…``MAX_PAGE``), ``last`` / ``before`` (exclusive bounds; at most one) and ``q``."""

    n: int = DEFAULT_PAGE
    last: str = ""
    before: str | None = None
    q: str = ""

    @classmethod
    def of(cls, request: Request) -> PageQuery:
        """From the query string. Raises ``PaginationNumberInvalid`` for a bad ``n``."""
        params = request.query_params
        raw = params.get("n") or str(DEFAULT_PAGE)
        if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
            raise PaginationNumberInvalid(f"n must be a positive integer, not {raw[:20]!r}")
        before = params.get("before")
        return cls(min(int(raw), MAX_PAGE), params.get("last", ""), before or None, params.get("q", "")[:200])


@dataclass(frozen=True)
class Page:
    """The keys of one page (ascending) and what lies around it."""

    keys: list[str]
    has_prev: bool
    has_next: bool
    total: int

    def headers(self, request: Request, page: PageQuery) -> dict[str, str]:
        """``Link`` (next/prev, keeping ``n`` and ``q``) and ``X-Total-Count``."""
        links = []
        base = {k: v for k, v in {"n": str(page.n), "q": page.q}.items() if v}
        if self.has_next:
            links.append(f'<{request.url.path}?{urlencode({**base, "last": self.keys[-1]})}>; rel="next"')
        if self.has_prev:
            links.append(f'<{request.url.path}?{urlencode({**base, "before": self.keys[0]})}>; rel="prev"')
        headers = {"X-Total-Count": str(self.total)}
        if links:
            headers["Link"] = ", ".join(links)
        return headers


async def keys_page(
    conn: Connection, table: str, key: str, where: str, args: list[Any], page: PageQuery
) -> Page:
    """One page of ``key`` from ``table`` rows matching ``where`` (SQL using ``$1…$len(args)``).

    ``table``, ``key`` and ``where`` are trusted SQL text (never user input); the user's values
    go in ``args`` and ``page``.
    """
    i = len(args)
    match = f"{where} AND (${i + 1} = '' OR strpos(lower({key}), lower(${i + 1})) > 0)"
    if page.before is None:
        inner = f"{key} > ${i + 2} ORDER BY {key} LIMIT ${i + 3}"
        bound: str = page.last
    else:
        inner = f"{key} < ${i + 2} ORDER BY {key} DESC LIMIT ${i + 3}"
        bound = page.before
    sql = f"""
        WITH page AS (SELECT {key} AS k FROM {table} WHERE {match} AND {inner}),
             edge AS (SELECT min(k) AS lo, max(k) AS hi FROM page)
        SELECT (SELECT coalesce(array_agg(k ORDER BY k), '{{}}') FROM page) AS keys,
               EXISTS (SELECT 1 FROM {table}, edge WHERE {match} AND {key} < edge.lo) AS has_prev,
               EXISTS (SELECT 1 FROM {table}, edge WHERE {match} AND {key} > edge.hi) AS has_next,
               (SELECT count(*) FROM {table} WHERE {match}) AS total
    """
    row = await conn.fetchrow(sql, *args, page.q, bound, page.n)
    assert row is not None  # aggregates always give one row
    return Page(list(row["keys"]), row["has_prev"], row["has_next"], row["total"])
