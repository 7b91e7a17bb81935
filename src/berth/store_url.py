"""``berth up --store URL``: the default blob store as one URL, turned into ``BERTH_STORAGE__*``.

Shapes (docs/CONFIGURATION.md, "Stores"):

- ``s3://BUCKET[/PREFIX][?endpoint=URL&region=R&public_endpoint=URL&redirect=false&secure=…]``
  — credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or the files or variables
  named by ``access_key_file``, ``secret_key_file``, ``access_key_env``, ``secret_key_env``);
- ``azure://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL&public_endpoint=URL&redirect=false]`` — the
  key from ``AZURE_STORAGE_KEY`` (or ``account_key_file`` / ``account_key_env``);
- ``file:///PATH`` or a plain path — the filesystem under PATH.

A URL never carries a secret: user information (``s3://KEY:SECRET@…``) and key values in the
query are refused, and no message repeats the URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from berth_common.storage.factory import place_of

ENV_PREFIX = "BERTH_STORAGE__"
_QUERY = {
    "s3": {"endpoint", "region", "public_endpoint", "secure", "redirect", "max_connections", "ca_file",
           "access_key_file", "secret_key_file", "access_key_env", "secret_key_env"},
    "azure": {"endpoint", "public_endpoint", "redirect", "max_connections", "account_key_file",
              "account_key_env"},
}  # fmt: skip
_SECRETS = ("access_key", "secret_key", "account_key")


def parse_store_url(url: str) -> dict[str, str]:
    """The default store's settings for ``url`` (see the module docstring), as the keys of
    ``StorageSettings`` (``kind``, ``root`` or ``bucket``/``container``, ``prefix``, options).

    The options are checked as the driver will check them (``place_of``: no request is made),
    so a missing credential is reported here, naming the environment variable, not its value.

    Raises:
        ValueError: an unknown scheme, a missing bucket/account/container, credentials in the
            URL, an unknown query option, or options the driver refuses.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        if parts.netloc not in ("", "localhost") or not (parts.path if scheme else url):
            raise ValueError("a filesystem store is file:///PATH or a plain path")
        return {"kind": "filesystem", "root": str(Path(unquote(parts.path) if scheme else url).resolve())}
    if scheme not in _QUERY:
        raise ValueError(f"unknown store scheme {scheme!r}: s3://, azure://, file:// or a path")
    # Before anything is taken apart: a secret often holds '/', '?' or '#', which move it into
    # the path, query or fragment where a later message could echo a piece of it. No part of a
    # store URL (bucket, account, container, prefix, endpoint) has '@'; a fragment has no use.
    if "@" in url or "#" in url:
        raise ValueError(
            "credentials do not go into the store URL: give them in the environment"
            " (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_KEY) or in files"
            " (?access_key_file=…)"
        )
    path = [unquote(p) for p in parts.path.split("/") if p]
    settings: dict[str, str] = {"kind": scheme}
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError("an S3 store URL is s3://BUCKET[/PREFIX]")
        settings |= {"bucket": parts.netloc, "prefix": "/".join(path)}
    else:
        if not parts.netloc or not path:
            raise ValueError("an Azure store URL is azure://ACCOUNT/CONTAINER[/PREFIX]")
        settings |= {"account_name": parts.netloc, "container": path[0], "prefix": "/".join(path[1:])}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _SECRETS:
            raise ValueError(f"{key} does not go into the store URL: use the environment or {key}_file")
        if key not in _QUERY[scheme] or key in settings:
            raise ValueError(
                f"unknown or repeated {scheme} store option {key!r}; known: {sorted(_QUERY[scheme])}"
            )
        settings[key] = value
    options: dict[str, Any] = {k: v for k, v in settings.items() if k not in ("kind", "redirect")}
    if settings.get("redirect", "true").lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("redirect must be true or false")
    place_of(scheme, options)
    return settings


def store_environment(url: str, environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with its ``BERTH_STORAGE__*`` variables replaced by those of ``url`` (the
    URL is the whole definition of the default store). Raises ``ValueError`` as
    :func:`parse_store_url`."""
    settings = parse_store_url(url)
    kept = {k: v for k, v in environ.items() if not k.startswith(ENV_PREFIX)}
    return kept | {f"{ENV_PREFIX}{key.upper()}": value for key, value in settings.items()}


def describe(settings: dict[str, str]) -> str:
    """Where the store keeps blobs, for the banner (never a credential): e.g.
    ``s3://bucket/prefix at http://127.0.0.1:9000``."""
    kind = settings.get("kind", "filesystem")
    if kind == "filesystem":
        return settings.get("root", "")
    where = settings["bucket"] if kind == "s3" else f"{settings['account_name']}/{settings['container']}"
    prefix = f"/{settings['prefix']}" if settings.get("prefix") else ""
    endpoint = f" at {settings['endpoint']}" if settings.get("endpoint") else ""
    return f"{kind}://{where}{prefix}{endpoint}"
