"""The shared driver suite on ``S3Driver`` against a real S3 HTTP server (moto, or MinIO in a
container; ``tests/support/stores.py``), plus what only S3 shows: raw keys and multipart uploads
left behind, presigned URLs, multipart copies, ETag checks, pagination, error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from berth_common.storage import (
    StorageBackendError,
    StorageDriver,
    WriterStateInvalid,
    _s3client,
    create_driver,
)
from berth_common.storage.s3 import S3Driver
from tests.drivers.suite import DriverSuite, MiB, chunks_of, payload, read_all
from tests.support.stores import S3Server

PREFIX = "store/berth"
SENTINELS = ["outside", "store/berth-sibling/x", "store/other"]  # must never be touched


def raw_keys(driver: S3Driver, prefix: str = "") -> list[str]:
    """Every key in the driver's bucket below ``prefix``, hidden ones included."""
    objects = driver.minio.list_objects(driver.settings.bucket, prefix=prefix, recursive=True)
    return sorted(o.object_name for o in objects if o.object_name)


def raw_uploads(driver: S3Driver) -> list[str]:
    """Keys of every multipart upload in progress in the driver's bucket."""
    page = driver.minio._list_multipart_uploads(driver.settings.bucket)
    return [u.object_name for u in page.uploads]


async def new_driver(server: S3Server, prefix: str = PREFIX, **extra: Any) -> S3Driver:
    """A driver on a fresh bucket holding ``SENTINELS``."""
    bucket = await anyio.to_thread.run_sync(server.new_bucket)
    driver = create_driver("s3", **server.options(bucket, prefix, **extra))
    assert isinstance(driver, S3Driver)
    for key in SENTINELS:
        await driver._client.put(key, key, b"sentinel")
    return driver


class TestS3Driver(DriverSuite):
    """Every ``DriverSuite`` test; leftovers are raw keys and multipart uploads in the bucket."""

    @pytest.fixture
    async def driver(self, s3_server: S3Server) -> AsyncIterator[StorageDriver]:
        driver = await new_driver(s3_server)
        yield driver
        await driver.close()

    async def leftovers(self, driver: StorageDriver) -> list[str]:
        assert isinstance(driver, S3Driver)
        keys = await anyio.to_thread.run_sync(raw_keys, driver)
        uploads = await anyio.to_thread.run_sync(raw_uploads, driver)
        assert sorted(SENTINELS) == [k for k in keys if k in SENTINELS], (
            "a key outside the prefix was touched"
        )
        return [k for k in keys if k not in SENTINELS] + [f"upload:{k}" for k in uploads]


class TestS3Only:
    """What only S3 shows (each test on its own fresh bucket)."""

    async def test_url_is_presigned_for_the_public_endpoint(self, s3_server: S3Server) -> None:
        """moto does not check signatures: the URL's host, expiry and signature fields are
        inspected, and the (unchecked) GET returns the object."""
        driver = await new_driver(s3_server, public_endpoint="https://s3.public.example:8443")
        await driver.write("blobs/obj", chunks_of(b"content"))
        url = await driver.url_for("blobs/obj", expires_in=90, external_host="berth.example")
        assert url is not None
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert (parts.scheme, parts.netloc) == ("https", "s3.public.example:8443")
        assert parts.path == f"/{driver.settings.bucket}/{PREFIX}/blobs/obj"
        assert query["X-Amz-Expires"] == ["90"] and query["X-Amz-SignedHeaders"] == ["host"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and len(query["X-Amz-Signature"][0]) == 64
        assert query["X-Amz-Credential"][0].startswith(f"{s3_server.access_key}/")
        own = await new_driver(s3_server)
        await own.write("obj", chunks_of(b"via the endpoint"))
        direct = await own.url_for("obj", method="HEAD")
        assert direct is not None and direct.startswith(s3_server.endpoint + "/")
        async with httpx.AsyncClient() as client:
            assert (await client.head(direct)).headers["content-length"] == "16"
        for bad in ({"method": "PUT"}, {"expires_in": 0}, {"expires_in": 604_801}):
            with pytest.raises(ValueError):
                await own.url_for("obj", **bad)

    async def test_large_move_is_a_multipart_copy(self, s3_server: S3Server) -> None:
        """Above ``multipart_copy_threshold`` a move copies in UploadPartCopy ranges (never one
        copy of more than 5 GiB): the ETag of the result names its part count."""
        driver = await new_driver(
            s3_server, multipart_copy_threshold=5 * MiB, multipart_copy_part_size=5 * MiB
        )
        data = payload(12 * MiB + 3, 7)
        await driver.write("uploads/u/data", chunks_of(data, MiB))
        await driver.move("uploads/u/data", "blobs/sha256/ab/abcd")
        head = await anyio.to_thread.run_sync(
            driver.minio.stat_object, driver.settings.bucket, f"{PREFIX}/blobs/sha256/ab/abcd"
        )
        assert head.etag is not None and head.etag.endswith("-3")
        assert await read_all(driver, "blobs/sha256/ab/abcd") == data
        assert await driver.stat("uploads/u/data") is None
        assert raw_uploads(driver) == []

    async def test_a_replaced_part_is_refused(self, s3_server: S3Server) -> None:
        """A superseded writer re-uploads part 2 under the recorded state: the next resume
        (ListParts) or the commit (CompleteMultipartUpload's ETag check) refuses."""
        driver = await new_driver(s3_server)
        writer = await driver.writer("u/data")
        await writer.write(payload(5 * MiB, 1))
        recorded = await writer.flush()
        await writer.close()
        stale, live = await driver.writer("u/data", recorded), await driver.writer("u/data", recorded)
        await live.write(payload(5 * MiB, 2))
        recorded = await live.flush()
        await live.close()
        final = await driver.writer("u/data", recorded)  # resumed before the stale part lands
        await stale.write(payload(5 * MiB, 3))  # replaces part 2
        with pytest.raises(WriterStateInvalid):
            await driver.writer("u/data", recorded)
        with pytest.raises(WriterStateInvalid):
            await final.commit()
        assert await driver.stat("u/data") is None
        await stale.cancel()
        assert raw_uploads(driver) == [] and raw_keys(driver, PREFIX + "/") == []

    async def test_parts_and_uploads_are_listed_page_by_page(
        self, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ListParts and ListMultipartUploads answer 1,000 at most: with pages of 2, a resume
        still checks all 3 parts and ``pending`` still finds all 3 uploads."""
        monkeypatch.setattr(_s3client, "PAGE", 2)
        driver = await new_driver(s3_server)
        states = {}
        for name in ("a", "b", "c"):
            writer = await driver.writer(f"{name}/data")
            await writer.write(payload(15 * MiB if name == "a" else 5 * MiB, 3))
            states[name] = await writer.flush()
            await writer.close()
        assert len(states["a"].data["parts"]) == 3
        calls: list[int] = []
        real = driver.minio._list_parts

        def counting(*args: Any, **kw: Any) -> Any:
            calls.append(1)
            return real(*args, **kw)

        monkeypatch.setattr(driver.minio, "_list_parts", counting)
        writer = await driver.writer("a/data", states["a"])
        await writer.commit()
        assert len(calls) == 2
        assert [p.path async for p in driver.pending("")] == ["b/data", "c/data"]
        async for found in driver.pending(""):
            await driver.abort_pending(found)
        assert raw_uploads(driver) == []
        await driver.delete("a")

    async def test_parts_grow_with_the_object(self) -> None:
        """10,000 parts of the growing size reach S3's 5 TiB object limit; 5 MiB parts alone
        would stop at 48.8 GiB."""
        from berth_common.storage._objectstore import part_size
        from berth_common.storage._s3writer import MAX_PART, MIN_PART

        written, largest = 0, 0
        for _ in range(10_000):
            size = part_size(written, minimum=MIN_PART, maximum=MAX_PART, divisor=1000)
            largest, written = max(largest, size), written + size
        assert written >= 5 * 1024**4 and largest == MAX_PART
        assert part_size(200 * MiB, minimum=MIN_PART, maximum=MAX_PART, divisor=1000) == 5 * MiB
        assert part_size(50 * 1024 * MiB, minimum=MIN_PART, maximum=MAX_PART, divisor=1000) == 52 * MiB

    async def test_errors_are_mapped(self, s3_server: S3Server) -> None:
        missing = create_driver("s3", **s3_server.options("no-such-bucket"))
        with pytest.raises(StorageBackendError) as refused:
            await missing.write("x", chunks_of(b"x"))
        assert not refused.value.retryable and "NoSuchBucket" in str(refused.value)
        with pytest.raises(StorageBackendError) as unreachable:
            await create_driver(
                "s3", **{**s3_server.options("any-bucket"), "endpoint": "http://127.0.0.1:9"}
            ).stat("x")
        assert unreachable.value.retryable
