"""A blob GET on a store that presigns answers 307 to the store (docs/ARCHITECTURE.md, "Stores").

The S3 store (a moto server here) with ``redirect: true``: the GET answers ``307`` with a
presigned URL on the store's endpoint, and fetching that URL gives the blob's bytes; a ranged
GET is redirected the same way (the client re-sends its ``Range`` to the store); HEAD is
answered by Berth from the link alone.
"""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from berth_common.settings import StorageSettings
from tests.support.berth_app import berth_app
from tests.support.stores import S3Server

pytestmark = pytest.mark.integration


async def test_blob_get_on_a_presigning_store_is_307_to_the_store(s3_server: S3Server) -> None:
    store = StorageSettings.model_validate(
        {"kind": "s3", **s3_server.options(s3_server.new_bucket()), "redirect": True}
    )
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with berth_app(with_bus=False, stores={"objects": store}) as berth:
        c = berth.client
        await berth.create_feed("presigned", store="objects")
        r = await c.post(f"/v2/presigned/x/blobs/uploads/?digest={digest}", content=data)
        assert r.status_code == 201, r.text
        for headers in ({}, {"Range": "bytes=0-9"}):
            r = await c.get(f"/v2/presigned/x/blobs/{digest}", headers=headers)
            assert r.status_code == 307, r.text
            location = r.headers["location"]
            assert location.startswith(f"{s3_server.endpoint}/"), location
            assert "content-range" not in r.headers
            async with httpx.AsyncClient(timeout=30) as plain:
                fetched = await plain.get(location, headers=headers)
            assert fetched.content == (data[:10] if headers else data)
        head = await c.head(f"/v2/presigned/x/blobs/{digest}")
        assert head.status_code == 200
        assert (head.headers["content-length"], head.headers["docker-content-digest"]) == (
            str(len(data)),
            digest,
        )
