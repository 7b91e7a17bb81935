"""The shared driver suite on ``AzureDriver`` against Azurite (a process, or a container;
``tests/support/stores.py``), plus what only Azure shows: uncommitted blobs left behind, SAS
URLs that Azurite verifies, block-by-block copies, block ids per writer, error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from berth_common.storage import StorageBackendError, StorageDriver, create_driver
from berth_common.storage.azure import AzureDriver
from tests.drivers.suite import DriverSuite, MiB, chunks_of, payload, read_all
from tests.support.stores import AzureServer

PREFIX = "store/berth"
SENTINELS = ["outside", "store/berth-sibling/x", "store/other"]  # must never be touched


async def raw_blobs(driver: AzureDriver) -> list[str]:
    """Every blob in the driver's container, uncommitted ones marked ``uncommitted:``."""
    container = driver.container
    committed = {name async for name in container.list_blob_names()}
    every = [b.name async for b in container.list_blobs(include=["uncommittedblobs"])]
    return sorted(name if name in committed else f"uncommitted:{name}" for name in every)


async def new_driver(server: AzureServer, prefix: str = PREFIX, **extra: Any) -> AzureDriver:
    """A driver on a fresh container holding ``SENTINELS``."""
    container = await server.new_container()
    driver = create_driver("azure", **server.options(container, prefix, **extra))
    assert isinstance(driver, AzureDriver)
    for name in SENTINELS:
        await driver.container.upload_blob(name, b"sentinel")
    return driver


class TestAzureDriver(DriverSuite):
    """Every ``DriverSuite`` test; leftovers include uncommitted blobs in the container."""

    @pytest.fixture
    async def driver(self, azure_server: AzureServer) -> AsyncIterator[StorageDriver]:
        driver = await new_driver(azure_server)
        yield driver
        await driver.close()

    async def leftovers(self, driver: StorageDriver) -> list[str]:
        assert isinstance(driver, AzureDriver)
        names = await raw_blobs(driver)
        assert sorted(SENTINELS) == [n for n in names if n in SENTINELS], (
            "a blob outside the prefix was touched"
        )
        return [n for n in names if n not in SENTINELS]


class TestAzureOnly:
    """What only Azure shows (each test on its own fresh container)."""

    async def test_sas_url_is_verified_by_the_store(self, azure_server: AzureServer) -> None:
        """Azurite checks SAS signatures: the URL (signed for the public endpoint) reads the
        blob; changing its expiry, its signature or the blob it names is refused."""
        public = azure_server.endpoint.replace("127.0.0.1", "localhost")
        driver = await new_driver(azure_server, public_endpoint=public)
        await driver.write("blobs/obj", chunks_of(b"signed content"))
        await driver.write("blobs/other", chunks_of(b"not yours"))
        url = await driver.url_for("blobs/obj", expires_in=120, external_host="berth.example")
        assert url is not None and url.startswith(f"{public}/{driver.settings.container}/{PREFIX}/blobs/obj?")
        query = parse_qs(urlsplit(url).query)
        assert query["sp"] == ["r"] and "se" in query and "sig" in query
        async with httpx.AsyncClient() as client:
            ok = await client.get(url)
            assert (ok.status_code, ok.content) == (200, b"signed content")
            assert (await client.head(url)).headers["content-length"] == "14"
            later = _with(url, se=["2099-01-01T00:00:00Z"])
            assert (await client.get(later)).status_code == 403
            sig = query["sig"][0]
            tampered = ("B" if sig[0] == "A" else "A") + sig[1:]  # always differs from the real one
            assert (await client.get(_with(url, sig=[tampered]))).status_code == 403
            assert (await client.get(url.replace("/blobs/obj?", "/blobs/other?"))).status_code == 403
        for bad in ({"method": "PUT"}, {"expires_in": 0}):
            with pytest.raises(ValueError):
                await driver.url_for("blobs/obj", **bad)
        await driver.close()

    async def test_large_move_is_copied_block_by_block(self, azure_server: AzureServer) -> None:
        """Above ``sync_copy_limit`` a move stages Put Block From URL ranges and commits them."""
        driver = await new_driver(azure_server, sync_copy_limit=MiB, copy_block_size=MiB)
        data = payload(3 * MiB + 5, 9)
        await driver.write("uploads/u/data", chunks_of(data, MiB))
        await driver.move("uploads/u/data", "blobs/sha256/ab/abcd")
        committed, _ = await driver.container.get_blob_client(
            f"{PREFIX}/blobs/sha256/ab/abcd"
        ).get_block_list()
        assert [b.size for b in committed] == [MiB, MiB, MiB, 5]
        assert await read_all(driver, "blobs/sha256/ab/abcd") == data
        assert await driver.stat("uploads/u/data") is None
        small = payload(1000, 1)
        await driver.write("small", chunks_of(small))
        await driver.move("small", "moved")  # one synchronous Copy Blob From URL
        assert await read_all(driver, "moved") == small
        await driver.close()

    async def test_block_ids_are_unique_per_writer(self, azure_server: AzureServer) -> None:
        """Two writers resumed from one state stage blocks under different ids, so the one
        the caller records commits without the other's bytes."""
        driver = await new_driver(azure_server)
        first = await driver.writer("u/data")
        await first.write(b"head")
        state = await first.flush()
        a, b = await driver.writer("u/data", state), await driver.writer("u/data", state)
        await a.write(b"A")
        await b.write(b"B")
        state_a, state_b = await a.flush(), await b.flush()
        ids = {block_id for block_id, _ in state_a.data["blocks"] + state_b.data["blocks"]}
        assert len(ids) == 3
        last = await driver.writer("u/data", state_b)
        await last.commit()
        assert await read_all(driver, "u/data") == b"headB"
        await driver.close()

    async def test_errors_are_mapped(self, azure_server: AzureServer) -> None:
        missing = create_driver("azure", **azure_server.options("no-such-container"))
        with pytest.raises(StorageBackendError) as refused:
            await missing.write("x", chunks_of(b"x"))
        assert not refused.value.retryable and "ContainerNotFound" in str(refused.value)
        with pytest.raises(StorageBackendError):  # a missing container is no missing blob
            await missing.stat("x")
        await missing.close()
        gone = create_driver(
            "azure", **{**azure_server.options("any-container"), "endpoint": "http://127.0.0.1:9/acct"}
        )
        with pytest.raises(StorageBackendError) as unreachable:
            await gone.stat("x")
        assert unreachable.value.retryable
        await gone.close()


def _with(url: str, **changes: list[str]) -> str:
    parts = urlsplit(url)
    query = {**parse_qs(parts.query), **changes}
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
