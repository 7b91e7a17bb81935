"""Build a storage driver from configuration: ``create_driver(kind, **options)``.

Kinds and their options (every option is documented in docs/CONFIGURATION.md, "Storage drivers"):

- ``"filesystem"``: ``root`` (a directory; created if missing).
- ``"s3"``: ``bucket``, ``prefix``, ``endpoint``, ``secure``, ``region``, ``access_key``,
  ``secret_key`` (each also ``*_file`` / ``*_env``), ``public_endpoint``, ``max_connections``,
  ``multipart_copy_threshold``, ``multipart_copy_part_size``, ``ca_file`` (``S3Settings.from_options``).
- ``"azure"``: ``account_name``, ``account_key`` (also ``_file`` / ``_env``), ``container``,
  ``prefix``, ``endpoint``, ``public_endpoint``, ``max_connections``, ``sync_copy_limit``,
  ``copy_block_size`` (``AzureSettings.from_options``).

Credentials are ``Secret`` values inside the drivers: no ``repr``, log line or error message
shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .base import StorageDriver


def _filesystem(options: dict[str, Any]) -> StorageDriver:
    from .filesystem import FilesystemDriver

    root = options.pop("root", None)
    if root is None:
        raise ValueError("filesystem storage needs the 'root' option")
    if options:
        raise ValueError(f"unknown filesystem storage options: {sorted(options)}")
    return FilesystemDriver(Path(root))


def _s3(options: dict[str, Any]) -> StorageDriver:
    from .s3 import S3Driver, S3Settings

    return S3Driver(S3Settings.from_options(options))


def _azure(options: dict[str, Any]) -> StorageDriver:
    from .azure import AzureDriver, AzureSettings

    return AzureDriver(AzureSettings.from_options(options))


_KINDS: dict[str, Callable[[dict[str, Any]], StorageDriver]] = {
    "filesystem": _filesystem,
    "s3": _s3,
    "azure": _azure,
}


def create_driver(kind: str, **options: Any) -> StorageDriver:
    """A new driver of ``kind`` configured by ``options`` (see the module docstring); the
    caller owns it (``await driver.close()``). Object-store drivers make no request here.

    Raises:
        ValueError: unknown ``kind``, or missing/unknown/invalid options for it.
    """
    try:
        build = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown storage driver {kind!r}; known: {sorted(_KINDS)}") from None
    return build(dict(options))


Place = tuple[str, tuple[str, ...]]


def place_of(kind: str, options: Mapping[str, Any]) -> Place:
    """Where a store of ``kind`` with ``options`` keeps its objects: the service and bucket or
    container (``""`` for the local filesystem), and the path below it as components. Two
    stores overlap when the first parts are equal and one path starts with the other.

    Raises:
        ValueError: as ``create_driver`` for the same arguments.
    """
    options = dict(options)
    if kind == "filesystem":
        if options.get("root") is None:
            raise ValueError("filesystem storage needs the 'root' option")
        return "", Path(options["root"]).resolve().parts
    if kind == "s3":
        from .s3 import S3Settings

        s3 = S3Settings.from_options(options)
        return f"s3://{s3.endpoint.lower()}/{s3.bucket}", tuple(filter(None, s3.prefix.split("/")))
    if kind == "azure":
        from .azure import AzureSettings

        azure = AzureSettings.from_options(options)
        where = f"azure:{azure.endpoint.lower().rstrip('/')}/{azure.container}"
        return where, tuple(filter(None, azure.prefix.split("/")))
    raise ValueError(f"unknown storage driver {kind!r}; known: {sorted(_KINDS)}")
