"""Jinja2 templates of the UI (autoescaped) and the filters they use; the static assets.

Assets (``static/``: the stylesheet, a little JavaScript, the icon) ship inside the package and
are served by the UI at ``/ui/static/<name>?v=<content hash>``, cached for a year: a changed
file gets a new URL. No CDN, no build step.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

STATIC: dict[str, tuple[bytes, str]] = {}
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def _load_static() -> None:
    for entry in resources.files("berth_ui").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            STATIC[entry.name] = (entry.read_bytes(), _TYPES[suffix])


def static_url(name: str) -> str:
    """The versioned URL of asset ``name``."""
    body, _ = STATIC[name]
    return f"/ui/static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}"


def human_size(value: int | None) -> str:
    """Bytes as ``1.4 MB`` (powers of 1000, as registries and docker show them)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"


def when(value: str | datetime | None) -> str:
    """A timestamp as ``2026-12-06 12:11 UTC``."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(value: str | datetime | None) -> str:
    """A timestamp for ``<time datetime=…>``."""
    if not value:
        return ""
    return value if isinstance(value, str) else value.isoformat()


def short(digest: str | None) -> str:
    """``sha256:abcdef…`` → ``abcdef012345`` (12 hex digits, as docker shows image ids)."""
    return "" if not digest else digest.split(":", 1)[-1][:12]


def query(base: str, **params: Any) -> str:
    """``base?k=v…`` with the non-empty params."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{base}?{urlencode(kept)}" if kept else base


_load_static()
templates = Environment(
    loader=PackageLoader("berth_ui", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(size=human_size, when=when, iso=iso, short=short)
templates.globals.update(static=static_url, query=query)
