"""Stored logins of ``berth login``: one refresh token per Berth URL, like ``docker login``.

The file is ``$XDG_CONFIG_HOME/berth/logins.json`` (``~/.config/berth/logins.json``), readable by
its owner only (0600, in a 0700 folder), written whole through a temporary file and a rename.
It holds refresh tokens (revocable, expiring: docs/SECURITY.md), never passwords::

    {"current": "https://registry.example",
     "logins": {"https://registry.example": {"username": "admin", "refresh_token": "br_…",
                                              "realm": "https://registry.example/token",
                                              "service": "berth"}}}

``current`` is the last login: the CLI talks to it when neither ``--url`` nor ``BERTH_URL``
says otherwise (``berth.client``).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/berth`` (default ``~/.config/berth``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "berth"


def logins_file() -> Path:
    """Where stored logins live (see the module docstring)."""
    return config_dir() / "logins.json"


def normalise_url(url: str) -> str:
    """``url`` as logins are keyed: scheme and host lower-cased, no trailing ``/``; ``http://``
    is assumed when no scheme is given (``127.0.0.1:5000`` → ``http://127.0.0.1:5000``)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


@dataclass(frozen=True)
class StoredLogin:
    """One login: the Berth ``url``, who logged in, their refresh token and the token endpoint
    (``realm``) and ``service`` its ``401`` challenge named."""

    url: str
    username: str
    refresh_token: str
    realm: str
    service: str


def _read() -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads(logins_file().read_text())
        if isinstance(data, dict) and isinstance(data.get("logins"), dict):
            return data
    return {"current": None, "logins": {}}


def _write(data: dict[str, Any]) -> None:
    """Replace the file atomically; it is created 0600 (never briefly readable by others)."""
    path = logins_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.chmod(temporary, 0o600)  # exactly 0600 whatever the umask (it can only narrow it)
    os.replace(temporary, path)


def find(url: str) -> StoredLogin | None:
    """The stored login for ``url`` (normalised), or ``None``."""
    key = normalise_url(url)
    entry = _read()["logins"].get(key)
    if not isinstance(entry, dict):
        return None
    with contextlib.suppress(TypeError):
        return StoredLogin(url=key, **entry)
    return None


def current() -> StoredLogin | None:
    """The login of the last ``berth login`` still stored, or ``None``."""
    url = _read().get("current")
    return find(url) if isinstance(url, str) else None


def store(login: StoredLogin) -> None:
    """Keep ``login`` (replacing one for the same URL) and make it the current one."""
    data = _read()
    entry = asdict(login)
    key = normalise_url(entry.pop("url"))
    data["logins"][key] = entry
    data["current"] = key
    _write(data)


def forget(url: str) -> StoredLogin | None:
    """Remove the login for ``url``; returns it (``None`` if there was none). If it was the
    current one, the most recently stored other login (if any) becomes current."""
    data = _read()
    key = normalise_url(url)
    login = find(key)
    if login is None:
        return None
    del data["logins"][key]
    if data.get("current") == key:
        data["current"] = next(reversed(data["logins"]), None)
    _write(data)
    return login
