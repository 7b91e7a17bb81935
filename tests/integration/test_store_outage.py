"""A blob store that cannot be reached is 503 UNAVAILABLE (retryable), never 500 UNKNOWN.

docs/ARCHITECTURE.md, "Errors": a backing service that is unreachable answers ``503
UNAVAILABLE`` — the storage drivers raise ``StorageBackendError`` for it ("Storage"). An upload
to a feed whose S3 store was down answered ``500 UNKNOWN`` (with a traceback in the log and the
connection closed after it), and the failed request must leave the session as it was.
"""

from __future__ import annotations

import hashlib

import pytest

from berth_common.settings import StorageSettings
from tests.support.berth_app import berth_app
from tests.support.net import free_port

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_an_unreachable_store_is_503_and_the_session_stays() -> None:
    dead = StorageSettings.model_validate({
        "kind": "s3", "bucket": "gone", "endpoint": f"http://127.0.0.1:{free_port()}",
        "access_key": "k", "secret_key": "s", "redirect": False,
    })  # fmt: skip
    async with berth_app(with_bus=False, stores={"down": dead}) as berth:
        c = berth.client
        await berth.create_feed("out", store="down")
        r = await c.post(f"/v2/out/x/blobs/uploads/?digest={sha(b'abc')}", content=b"abc")
        assert r.status_code == 503 and r.json()["errors"][0]["code"] == "UNAVAILABLE", r.text
        session = (await c.post("/v2/out/x/blobs/uploads/")).headers["location"]  # no store I/O
        r = await c.patch(session, content=b"abc")
        assert r.status_code == 503 and r.json()["errors"][0]["code"] == "UNAVAILABLE", r.text
        status = await c.get(session)
        assert status.status_code == 204 and status.headers["range"] == "0-0"  # nothing recorded
        r = await c.put(session, params={"digest": sha(b"")})
        assert r.status_code == 503 and r.json()["errors"][0]["code"] == "UNAVAILABLE", r.text
        assert (await c.get(session)).status_code == 204  # the session is still open
