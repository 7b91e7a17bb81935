"""A chunked upload survives a restart of Berth (docs/DESIGN.md §3: state lives in Postgres and storage).

Start an upload, send a chunk, stop ``berth up``, start it again on the same data directory and
database, send the rest, complete with the digest: the digest is verified over both halves.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, berth_process
from tests.support.databases import NATS_URL, delete_stream, temporary_database, unique

pytestmark = pytest.mark.e2e
AUTH = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)


async def test_chunked_upload_survives_restart(scratch_dir: Path) -> None:
    stream = unique("BERTH_E2E_")
    workdir = scratch_dir
    async with temporary_database("berth_e2e_") as dsn:
        try:
            await asyncio.to_thread(_upload_across_restart, workdir, dsn, stream)
        finally:
            await delete_stream(stream)


def _upload_across_restart(workdir: Path, dsn: str, stream: str) -> None:
    first, second = os.urandom(3 * 1024 * 1024 + 7), os.urandom(2 * 1024 * 1024 + 3)
    digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
    data_dir = workdir / "data"
    with berth_process(
        workdir, database_url=dsn, nats_url=NATS_URL, stream=stream, data_dir=data_dir
    ) as berth:
        berth.create_feed("restart")
        start = httpx.post(f"{berth.url}/v2/restart/big/blobs/uploads/", auth=AUTH)
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        patch = httpx.patch(
            f"{berth.url}{location}",
            auth=AUTH,
            content=first,
            headers={"Content-Range": f"0-{len(first) - 1}"},
        )
        assert patch.status_code == 202, patch.text
        assert patch.headers["range"] == f"0-{len(first) - 1}"
        port = int(berth.host.rsplit(":", 1)[1])
    with berth_process(
        workdir, database_url=dsn, nats_url=NATS_URL, stream=stream, data_dir=data_dir, port=port
    ) as berth:
        status = httpx.get(f"{berth.url}{location}", auth=AUTH)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{len(first) - 1}"
        end = len(first) + len(second) - 1
        patch = httpx.patch(
            f"{berth.url}{location}",
            auth=AUTH,
            content=second,
            headers={"Content-Range": f"{len(first)}-{end}"},
        )
        assert patch.status_code == 202, patch.text
        put = httpx.put(f"{berth.url}{location}?digest={digest}", auth=AUTH)
        assert put.status_code == 201, put.text
        blob = httpx.get(f"{berth.url}/v2/restart/big/blobs/{digest}", auth=AUTH)
        assert blob.status_code == 200
        assert hashlib.sha256(blob.content).hexdigest() == digest.split(":")[1]
