"""Resumable writes across real processes on S3 (moto/MinIO) and Azure Blob (Azurite): the state a
writer flushes in this process is resumed by a second driver instance in another process
(``tests/drivers/resume_writer.py``), as Berth's upload sessions move between replicas; and a
superseded writer that keeps writing after another process took over never gets its bytes into
the committed object."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from berth_common.storage import StorageDriver, StorageError, WriterState, create_driver
from tests.drivers.suite import MiB, payload, read_all
from tests.support.stores import REPO_ROOT, AzureServer, S3Server

PATH = "feeds/f/uploads/0f6a3c1e-7b2d-4c1a-9e8f-123456789abc/data"


@dataclass
class Store:
    """A fresh bucket/container: its driver kind, options, and this process's driver."""

    kind: str
    options: dict[str, Any]
    driver: StorageDriver


@pytest.fixture(params=["s3", "azure"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        options = s3.options(await anyio.to_thread.run_sync(s3.new_bucket), "berth")
    else:
        azure: AzureServer = request.getfixturevalue("azure_server")
        options = azure.options(await azure.new_container(), "berth")
    driver = create_driver(request.param, **options)
    yield Store(request.param, options, driver)
    assert [p.path async for p in driver.pending("")] == [], "an unfinished write was left behind"
    await driver.close()


async def in_other_process(store: Store, state: WriterState | None, seed: int, size: int, action: str) -> Any:
    """Run ``resume_writer`` in a new Python process; its JSON answer."""
    request = {
        "kind": store.kind,
        "options": store.options,
        "path": PATH,
        "seed": seed,
        "size": size,
        "action": action,
        "state": None if state is None else {"size": state.size, "data": dict(state.data)},
    }
    command = [sys.executable, "-m", "tests.drivers.resume_writer"]
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            command, input=json.dumps(request), capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
        )
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def flushed(store: Store, state: WriterState | None, data: bytes) -> WriterState:
    """Resume in this process, write ``data``, flush, close."""
    writer = await store.driver.writer(PATH, state)
    await writer.write(data)
    new = await writer.flush()
    await writer.close()
    return new


async def test_a_write_resumes_in_another_process(store: Store) -> None:
    head, tail = payload(6 * MiB + 123, 1), b"end"
    state = await flushed(store, None, head)  # a full part/block plus a tail
    answer = await in_other_process(store, state, seed=2, size=7 * MiB, action="flush")
    assert answer["size"] == len(head) + 7 * MiB
    writer = await store.driver.writer(PATH, WriterState(answer["size"], answer["data"]))
    await writer.write(tail)
    await writer.commit()
    assert await read_all(store.driver, PATH) == head + payload(7 * MiB, 2) + tail
    await store.driver.delete(PATH)


@pytest.mark.parametrize("late", [100, 6 * MiB], ids=["late-tail", "late-parts"])
async def test_a_superseded_writer_never_lands(store: Store, late: int) -> None:
    """This process's writer stalls; another process resumes from the same state, writes and
    flushes (the caller records that); the stale writer then writes ``late`` bytes and flushes;
    a third process commits the recorded state. The object is exactly the recorded bytes — or,
    on S3 when the stale writer replaced a recorded part, the commit is refused and nothing
    appears (S3 checks each part's ETag)."""
    head = payload(6 * MiB + 1, 1)
    state = await flushed(store, None, head)
    stale = await store.driver.writer(PATH, state)
    answer = await in_other_process(store, state, seed=2, size=5 * MiB + 10, action="flush")
    recorded = WriterState(answer["size"], answer["data"])
    await stale.write(payload(late, 3))
    with contextlib.suppress(StorageError):  # whether a stale flush fails or not, it must not land
        await stale.flush()
    await stale.close()
    result = await in_other_process(store, recorded, seed=4, size=0, action="commit")
    replaced = (store.kind, late) == ("s3", 6 * MiB)  # the stale part 2 landed after the live one
    assert (result == {"error": "WriterStateInvalid"}) == replaced, result
    if replaced:
        assert await store.driver.stat(PATH) is None
        async for found in store.driver.pending(""):
            await store.driver.abort_pending(found)
        return
    assert result == {"committed": recorded.size}
    assert await read_all(store.driver, PATH) == head + payload(5 * MiB + 10, 2)
    await store.driver.delete(PATH)
