"""The Azure Blob driver's options (``create_driver("azure", …)``), the client built from them,
and the mapping of azure-core's exceptions to the protocol's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

from ._objectstore import MiB
from ._options import Secret, check_bucket_name, pop_int, pop_prefix, pop_secret, pop_str, reject_unknown
from .base import ObjectNotFound, StorageBackendError, StorageError, WriterStateInvalid

KIND = "azure"
_NOT_FOUND = ("BlobNotFound",)
_WRITE_STATE = ("InvalidBlockList", "InvalidBlockId")
_RETRYABLE = ("ServerBusy", "OperationTimedOut", "InternalError")


@dataclass(frozen=True)
class AzureSettings:
    """Where and how the Azure Blob driver stores objects. Build with ``from_options``.

    Attributes:
        account_name: the storage account.
        account_key: its shared key (``Secret``: never shown); signs requests and SAS URLs.
        container: the container (must exist; 3-63 lowercase letters, digits, ``-``).
        prefix: blob name prefix of every object, ``""`` or ending in ``/``.
        endpoint: the account URL the driver talks to, without a trailing ``/``.
        public_endpoint: the account URL that SAS URLs point to (clients must reach it).
        max_connections: pooled connections (aiohttp) of this driver.
        sync_copy_limit: ``move`` copies blobs up to this size with one synchronous Copy Blob
            From URL (Azure allows 256 MiB); larger ones block by block (Put Block From URL).
        copy_block_size: the range of each Put Block From URL.
    """

    account_name: str
    account_key: Secret = field(repr=False)
    container: str
    prefix: str = ""
    endpoint: str = ""
    public_endpoint: str = ""
    max_connections: int = 32
    sync_copy_limit: int = 256 * MiB
    copy_block_size: int = 100 * MiB

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> AzureSettings:
        """Parse ``create_driver("azure", **options)``'s options.

        Options:
            account_name (required): the storage account.
            account_key / account_key_file / account_key_env: the account's key, given
                directly, as a file holding it, or as the name of an environment variable;
                default environment variable ``AZURE_STORAGE_KEY``.
            container (required): the container.
            prefix: folder inside the container (default ``""``).
            endpoint: account URL (default ``https://<account_name>.blob.core.windows.net``;
                Azurite: ``http://127.0.0.1:10000/devstoreaccount1``).
            public_endpoint: account URL in SAS URLs handed to clients (default: ``endpoint``).
            max_connections: 1-1024 (default 32).
            sync_copy_limit: bytes, 1 MiB-256 MiB (default 256 MiB).
            copy_block_size: bytes, 1 MiB-4000 MiB (default 100 MiB).

        Raises:
            ValueError: a missing, invalid or unknown option (messages never show the key).
        """
        options = dict(options)
        account = pop_str(options, "account_name", KIND)
        if not account.isalnum() or not 3 <= len(account) <= 24:
            raise ValueError("azure storage: invalid 'account_name' (3-24 letters and digits)")
        endpoint = _account_url(
            pop_str(options, "endpoint", KIND, f"https://{account}.blob.core.windows.net"), "endpoint"
        )
        public = options.pop("public_endpoint", None)
        settings = cls(
            account_name=account,
            account_key=pop_secret(options, "account_key", KIND, "AZURE_STORAGE_KEY"),
            container=check_bucket_name(pop_str(options, "container", KIND), "container", KIND),
            prefix=pop_prefix(options, KIND),
            endpoint=endpoint,
            public_endpoint=endpoint if public is None else _account_url(str(public), "public_endpoint"),
            max_connections=pop_int(options, "max_connections", KIND, 32, 1, 1024),
            sync_copy_limit=pop_int(options, "sync_copy_limit", KIND, 256 * MiB, MiB, 256 * MiB),
            copy_block_size=pop_int(options, "copy_block_size", KIND, 100 * MiB, MiB, 4000 * MiB),
        )
        reject_unknown(options, KIND)
        return settings


def _account_url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"azure storage: {option!r} must be an http(s) URL without a query")
    return value.rstrip("/")


def make_service(settings: AzureSettings) -> tuple[BlobServiceClient, aiohttp.ClientSession]:
    """An async service client on its own aiohttp session (``max_connections`` connections);
    downloads come in 4 MiB requests, so a read holds at most one of them; failed requests are
    retried 3 times after about 1, 3 and 7 s (the SDK's default waits 15, 18 and 42 s). Call
    inside the event loop that will use it; the caller closes both."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.max_connections),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=True,
    )
    credential = AzureNamedKeyCredential(settings.account_name, settings.account_key.reveal())
    service = BlobServiceClient(
        settings.endpoint,
        credential=credential,
        transport=AioHttpTransport(session=session, session_owner=False),
        max_single_get_size=4 * MiB,
        max_chunk_get_size=4 * MiB,
        retry_policy=ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1
        ),
    )
    return service, session


def translate(exc: BaseException, path: str) -> StorageError:
    """azure-core exception → the protocol's error for ``path``. Messages carry the error code
    and status only: the SDK's own text may quote a SAS URL."""
    if isinstance(exc, HttpResponseError):
        raw = getattr(exc, "error_code", None)
        code = str(getattr(raw, "value", raw) or "")
        if code in _NOT_FOUND:
            return ObjectNotFound(path)
        if code in _WRITE_STATE:
            return WriterStateInvalid(path, f"Azure answered {code}")
        status = exc.status_code or 0
        retryable = status >= 500 or status in (408, 429) or code in _RETRYABLE
        return StorageBackendError(f"Azure {code or 'error'} (HTTP {status}) on {path}", retryable=retryable)
    if isinstance(exc, AzureError):
        return StorageBackendError(f"Azure unreachable on {path}: {type(exc).__name__}", retryable=True)
    return StorageBackendError(f"Azure failed on {path}: {type(exc).__name__}", retryable=True)


LIBRARY_ERRORS = (AzureError, aiohttp.ClientError, OSError)
