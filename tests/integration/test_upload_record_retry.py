"""A chunk's record transaction that is retried (a deadlock or serialization failure at commit)
still records the chunk: the lease's recorded size changes only once the transaction commits.

Before, ``sessions.publish`` moved the in-memory lease to the new size inside the transaction;
when ``run_with_retry`` ran it again, the compare-and-set looked for the new size, found the
old one and answered a spurious 429 (the chunk was lost to the client, which had to resend it).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import asyncpg
import pytest

from berth_common.events import ChunkReceived
from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration


async def test_a_retried_chunk_record_is_not_a_spurious_429(monkeypatch: pytest.MonkeyPatch) -> None:
    import berth_blob.domain.uploads as uploads_module

    async with berth_app(with_bus=False) as berth:
        await berth.create_feed("rr")
        c, data = berth.client, os.urandom(5000)
        location = (await c.post("/v2/rr/x/blobs/uploads/")).headers["location"]
        real, attempts = ChunkReceived, []

        def failing_once(**kw: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 1:  # the first attempt's transaction fails and is retried
                raise asyncpg.SerializationError("could not serialize access (simulated)")
            return real(**kw)

        monkeypatch.setattr(uploads_module, "ChunkReceived", failing_once)
        r = await c.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
        monkeypatch.undo()
        assert len(attempts) == 2
        assert r.status_code == 202 and r.headers["range"] == f"0-{len(data) - 1}", r.text
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert (await c.put(location, params={"digest": digest})).status_code == 201
        assert (await c.get(f"/v2/rr/x/blobs/{digest}")).content == data
