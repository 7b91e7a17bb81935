"""An upload session whose recorded bytes are gone answers 400 BLOB_UPLOAD_INVALID, never a 500.

A crash between the commit's move into place and its transaction leaves a session whose data
was moved away (docs/ARCHITECTURE.md, "Storage", upload sessions). The closing PUT already answered
BLOB_UPLOAD_INVALID for it (``test_gc_races``); a PATCH to the same session — a client that
retries its last chunk after the crash — raised ``DataGone`` out of the route: 500 UNKNOWN.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.test_gc import commit_session_data
from tests.integration.test_gc_races import _patched_session, content_path, sha
from tests.support.berth_app import berth_app

pytestmark = pytest.mark.integration


async def test_patch_to_a_session_whose_data_is_gone_is_blob_upload_invalid() -> None:
    async with berth_app(with_bus=False) as berth:
        c, storage = berth.client, berth.storage
        data = os.urandom(4096)
        location, upload_id = await _patched_session(berth, "pg", data)
        moved = await commit_session_data(berth, upload_id)
        await storage.move(moved, content_path("pg", sha(data)))  # the crash: moved, not committed
        chunk = {"Content-Range": f"{len(data)}-{len(data) + 3}"}
        r = await c.patch(location, content=b"more", headers=chunk)
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID", r.text
        assert (await c.get(location)).status_code == 404  # the session ended; the client starts again
        assert (await c.post(f"/v2/pg/x/blobs/uploads/?digest={sha(data)}", content=data)).status_code == 201
        assert (await c.get(f"/v2/pg/x/blobs/{sha(data)}")).content == data
