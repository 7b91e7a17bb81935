"""Storage drivers: a small async protocol over byte objects, and where registry data lives.

``create_driver(kind, **options)`` builds a driver (filesystem, S3, Azure Blob); wrap it in
``InstrumentedDriver`` for spans and metrics; ``layout`` maps digests and upload sessions to
paths (docs/DESIGN.md §3).
"""

from .base import (
    ObjectInfo,
    ObjectNotFound,
    PendingWrite,
    StorageBackendError,
    StorageDriver,
    StorageError,
    Writer,
    WriterState,
    WriterStateInvalid,
    validate_path,
    validate_prefix,
)
from .factory import create_driver
from .filesystem import FilesystemDriver
from .instrumented import InstrumentedDriver
from .layout import Location, ParsedPath, blob_path, is_upload_id, parse, upload_data_path, upload_prefix
from .stores import Stores, UnknownStore

__all__ = [
    "FilesystemDriver",
    "InstrumentedDriver",
    "Location",
    "ObjectInfo",
    "ObjectNotFound",
    "ParsedPath",
    "PendingWrite",
    "StorageBackendError",
    "StorageDriver",
    "StorageError",
    "Stores",
    "UnknownStore",
    "Writer",
    "WriterState",
    "WriterStateInvalid",
    "blob_path",
    "create_driver",
    "is_upload_id",
    "parse",
    "upload_data_path",
    "upload_prefix",
    "validate_path",
    "validate_prefix",
]
