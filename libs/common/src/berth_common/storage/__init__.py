"""Storage drivers: a small async protocol over byte objects, and where registry data lives.

``create_driver("filesystem", root=...)`` builds a driver; wrap it in ``InstrumentedDriver`` for
spans and metrics; ``layout`` maps digests and upload sessions to paths (DESIGN.md §3).
"""

from .base import (
    ObjectInfo,
    ObjectNotFound,
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
from .layout import blob_path, upload_data_path, upload_prefix

__all__ = [
    "FilesystemDriver",
    "InstrumentedDriver",
    "ObjectInfo",
    "ObjectNotFound",
    "StorageDriver",
    "StorageError",
    "Writer",
    "WriterState",
    "WriterStateInvalid",
    "blob_path",
    "create_driver",
    "upload_data_path",
    "upload_prefix",
    "validate_path",
    "validate_prefix",
]
