"""The S3 driver's options (``create_driver("s3", …)``) and the minio clients built from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import certifi
import urllib3
from minio import Minio
from urllib3.util import Retry, Timeout

from ._objectstore import MiB
from ._options import (
    Secret,
    check_bucket_name,
    pop_bool,
    pop_int,
    pop_prefix,
    pop_secret,
    pop_str,
    reject_unknown,
    split_endpoint,
)

GiB = 1024 * MiB
KIND = "s3"


@dataclass(frozen=True)
class S3Settings:
    """Where and how the S3 driver stores objects. Build with ``from_options``.

    Attributes:
        bucket: the bucket (must exist; 3-63 characters).
        prefix: key prefix of every object, ``""`` or ending in ``/``.
        endpoint: ``host[:port]`` the driver talks to; ``secure``: HTTPS to it.
        region: the bucket's region (signing needs it; no lookup request is made).
        access_key, secret_key: the credentials (``Secret``: never shown).
        public_endpoint, public_secure: where presigned URLs point (clients must reach it).
        max_connections: pooled connections and concurrent requests of this driver.
        multipart_copy_threshold: ``move`` copies larger objects with UploadPartCopy.
        multipart_copy_part_size: the range size of each UploadPartCopy.
        ca_file: PEM bundle that verifies the endpoint's TLS certificate (``None``: the
            ``SSL_CERT_FILE`` environment variable, else certifi's bundle).
    """

    bucket: str
    access_key: Secret = field(repr=False)
    secret_key: Secret = field(repr=False)
    prefix: str = ""
    endpoint: str = "s3.amazonaws.com"
    secure: bool = True
    region: str = "us-east-1"
    public_endpoint: str = "s3.amazonaws.com"
    public_secure: bool = True
    max_connections: int = 32
    multipart_copy_threshold: int = 5 * GiB
    multipart_copy_part_size: int = 512 * MiB
    ca_file: str | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> S3Settings:
        """Parse ``create_driver("s3", **options)``'s options.

        Options:
            bucket (required): bucket name.
            prefix: folder inside the bucket (default ``""``: the bucket's root).
            endpoint: ``host[:port]`` or ``http(s)://host[:port]`` (default ``s3.amazonaws.com``).
            secure: HTTPS (default ``True``; a URL scheme in ``endpoint`` decides instead).
            region: default ``us-east-1``.
            access_key / access_key_file / access_key_env: the access key id, given directly,
                as a file holding it, or as the name of an environment variable; default
                environment variable ``AWS_ACCESS_KEY_ID``.
            secret_key / secret_key_file / secret_key_env: the same for the secret key
                (default ``AWS_SECRET_ACCESS_KEY``).
            public_endpoint: ``host[:port]`` or URL that presigned URLs use (default: ``endpoint``).
            max_connections: 1-1024 (default 32).
            multipart_copy_threshold: bytes, 5 MiB-5 GiB (default 5 GiB).
            multipart_copy_part_size: bytes, 5 MiB-5 GiB (default 512 MiB).
            ca_file: PEM file of CA certificates for HTTPS.

        Raises:
            ValueError: a missing or invalid option, or an unknown one (messages name options,
                never credential values).
        """
        options = dict(options)
        bucket = check_bucket_name(pop_str(options, "bucket", KIND), "bucket", KIND)
        secure_opt = pop_bool(options, "secure", KIND)
        endpoint, secure = split_endpoint(
            pop_str(options, "endpoint", KIND, "s3.amazonaws.com"), secure_opt, "endpoint", KIND
        )
        public_raw = options.pop("public_endpoint", None)
        public, public_secure = (
            (endpoint, secure)
            if public_raw is None
            else split_endpoint(str(public_raw), None, "public_endpoint", KIND)
        )
        settings = cls(
            bucket=bucket,
            access_key=pop_secret(options, "access_key", KIND, "AWS_ACCESS_KEY_ID"),
            secret_key=pop_secret(options, "secret_key", KIND, "AWS_SECRET_ACCESS_KEY"),
            prefix=pop_prefix(options, KIND),
            endpoint=endpoint,
            secure=secure,
            region=pop_str(options, "region", KIND, "us-east-1"),
            public_endpoint=public,
            public_secure=public_secure,
            max_connections=pop_int(options, "max_connections", KIND, 32, 1, 1024),
            multipart_copy_threshold=pop_int(
                options, "multipart_copy_threshold", KIND, 5 * GiB, 5 * MiB, 5 * GiB
            ),
            multipart_copy_part_size=pop_int(
                options, "multipart_copy_part_size", KIND, 512 * MiB, 5 * MiB, 5 * GiB
            ),
            ca_file=options.pop("ca_file", None),
        )
        reject_unknown(options, KIND)
        return settings


def make_clients(settings: S3Settings) -> tuple[Minio, Minio]:
    """The client for requests (a urllib3 pool of ``max_connections``, retries on 5xx and
    connection errors, 5-minute reads) and one that only presigns for ``public_endpoint``."""
    pool = urllib3.PoolManager(
        num_pools=4,
        maxsize=settings.max_connections,
        timeout=Timeout(connect=10, read=300),
        cert_reqs="CERT_REQUIRED",
        ca_certs=settings.ca_file or os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    access, secret = settings.access_key.reveal(), settings.secret_key.reveal()
    client = Minio(
        settings.endpoint, access, secret, secure=settings.secure, region=settings.region, http_client=pool
    )
    presigner = Minio(
        settings.public_endpoint,
        access,
        secret,
        secure=settings.public_secure,
        region=settings.region,
        http_client=pool,
    )
    return client, presigner
