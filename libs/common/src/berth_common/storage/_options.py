"""Option parsing shared by the object-store drivers' factories: secrets, booleans, sizes, endpoints.

Every helper *pops* what it reads from the caller's ``options`` dict, so whatever is left at the
end is an unknown option (``reject_unknown``). Error messages name options, never their values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .base import validate_prefix


class Secret:
    """A credential that never shows up in a ``repr``, ``str``, log line or traceback value.

    ``reveal()`` gives the value to the one client that needs it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret text."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def pop_secret(options: dict[str, Any], name: str, kind: str, default_env: str) -> Secret:
    """Read credential ``name`` from exactly one of: option ``name`` (the value), ``name_file``
    (a file whose content, stripped of surrounding whitespace, is the value), ``name_env`` (the
    name of an environment variable holding it); with none of them, environment variable
    ``default_env``.

    Raises:
        ValueError: more than one source given; the file is unreadable; the variable is unset
            or empty; or no source at all.
    """
    given = [key for key in (name, f"{name}_file", f"{name}_env") if options.get(key) is not None]
    if len(given) > 1:
        raise ValueError(f"{kind} storage: give only one of {' / '.join(given)}")
    value = options.pop(name, None)
    file = options.pop(f"{name}_file", None)
    env = options.pop(f"{name}_env", None)
    if value is not None:
        text = str(value.reveal() if isinstance(value, Secret) else value)
    elif file is not None:
        text = _read_secret_file(Path(file), f"{name}_file", kind)
    else:
        variable = str(env) if env is not None else default_env
        text = os.environ.get(variable, "")
        if not text:
            hint = f"{name}, {name}_file or {name}_env" if env is None else f"{name}_env"
            raise ValueError(f"{kind} storage needs {hint} (environment variable {variable} is not set)")
    if not text.strip():
        raise ValueError(f"{kind} storage: {given[0] if given else name} is empty")
    return Secret(text.strip())


def _read_secret_file(path: Path, option: str, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{kind} storage: cannot read {option} {str(path)!r}: {exc.strerror}") from None


def pop_str(options: dict[str, Any], name: str, kind: str, default: str | None = None) -> str:
    """A required (``default=None``) or defaulted string option.

    Raises:
        ValueError: missing and required, or not a string.
    """
    value = options.pop(name, None)
    if value is None:
        if default is None:
            raise ValueError(f"{kind} storage needs the {name!r} option")
        return default
    if not isinstance(value, str):
        raise ValueError(f"{kind} storage: {name!r} must be a string")
    return value


def pop_bool(options: dict[str, Any], name: str, kind: str) -> bool | None:
    """A boolean option; also ``"true"/"false"/"1"/"0"/"yes"/"no"`` from the environment.

    Raises:
        ValueError: anything else.
    """
    value = options.pop(name, None)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{kind} storage: {name!r} must be true or false")


def pop_int(options: dict[str, Any], name: str, kind: str, default: int, low: int, high: int) -> int:
    """An integer option within ``[low, high]``.

    Raises:
        ValueError: not an integer, or out of range.
    """
    value = options.pop(name, None)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{kind} storage: {name!r} must be an integer") from None
    if not low <= number <= high:
        raise ValueError(f"{kind} storage: {name!r} must be between {low} and {high}")
    return number


def pop_prefix(options: dict[str, Any], kind: str) -> str:
    """The ``prefix`` option: ``""`` or a valid storage path (one trailing ``/`` allowed);
    returned as the key prefix to put in front of every path (``""`` or ``"a/b/"``).

    Raises:
        ValueError: not a valid path.
    """
    raw = pop_str(options, "prefix", kind, "")
    try:
        norm = validate_prefix(raw)
    except ValueError:
        raise ValueError(f"{kind} storage: invalid 'prefix' {raw!r}") from None
    return f"{norm}/" if norm else ""


def split_endpoint(value: str, secure: bool | None, option: str, kind: str) -> tuple[str, bool]:
    """``"host[:port]"`` or ``"http(s)://host[:port]"`` → ``(host[:port], secure)``.

    A scheme decides ``secure``; without one, ``secure`` (default ``True``) does.

    Raises:
        ValueError: a path, query or unknown scheme, a scheme that contradicts ``secure``, user
            information (a credential) or a port outside 1-65535.
    """
    if "://" not in value:
        parts = urlsplit(f"//{value}")
        scheme_secure = None
    else:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{kind} storage: {option!r} must be http:// or https://")
        scheme_secure = parts.scheme == "https"
    if not parts.netloc or parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"{kind} storage: {option!r} must be host[:port] or a URL without a path")
    if "@" in parts.netloc:  # user information is a credential: never in an endpoint (nor echoed)
        raise ValueError(f"{kind} storage: {option!r} must not carry credentials (user@host)")
    try:
        port = parts.port  # ValueError past 65535 or not a number
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{kind} storage: {option!r} has an invalid port (1-65535)")
    if scheme_secure is not None and secure is not None and scheme_secure != secure:
        raise ValueError(f"{kind} storage: {option!r} scheme contradicts 'secure'")
    chosen = scheme_secure if scheme_secure is not None else (True if secure is None else secure)
    return parts.netloc, chosen


def check_bucket_name(name: str, option: str, kind: str) -> str:
    """Bucket and container names: 3-63 lowercase letters, digits, ``-`` (and ``.`` for S3).

    Raises:
        ValueError: otherwise.
    """
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-" + ("." if kind == "s3" else ""))
    if not 3 <= len(name) <= 63 or not set(name) <= allowed or not name[0].isalnum():
        raise ValueError(f"{kind} storage: invalid {option!r} {name!r} (3-63 lowercase letters, digits, '-')")
    return name


def reject_unknown(options: dict[str, Any], kind: str) -> None:
    """Raise ``ValueError`` naming every option nobody read."""
    if options:
        raise ValueError(f"unknown {kind} storage options: {sorted(options)}")
