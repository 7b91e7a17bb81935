"""``berth up --store s3://BUCKET/PREFIX?endpoint=…`` against the tests' S3 server (moto here,
MinIO with containers): an image pushed with skopeo lands in the bucket under the prefix, pulls
back with the same digests, and the credentials (from ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``) never appear in the output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.conftest import Kind, fresh_name, scratch_database, scratch_stream
from tests.support.berth_process import berth_process
from tests.support.databases import NATS_URL
from tests.support.stores import S3Server

pytestmark = pytest.mark.e2e


def test_berth_up_with_an_s3_store(
    registry_kind: Kind, s3_server: S3Server, layout: Path, tmp_path: Path
) -> None:
    """Push the two-platform index and pull it back; every blob is an object at
    ``PREFIX/blobs/sha256/<2>/<hex>`` in the bucket with those bytes, nothing else is left
    there (no upload data), and the banner names the store but no key."""
    if registry_kind != "berth":
        pytest.skip("berth up runs only against Berth")
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/up?endpoint={s3_server.endpoint}&region={s3_server.region}"
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    feed = fresh_name("up")
    with (
        scratch_database() as database_url,
        scratch_stream() as stream,
        berth_process(
            tmp_path,
            database_url=database_url,
            nats_url=NATS_URL,
            stream=stream,
            extra_args=("--store", url),
            env=env,
        ) as server,  # fmt: skip
    ):
        server.create_feed(feed)
        remote = docker_ref(server.host, f"{feed}/multi", "multi")
        skopeo_copy(f"oci:{layout}:multi", remote, "--all", "--preserve-digests")
        skopeo_copy(remote, f"oci:{tmp_path / 'back'}:multi", "--all", "--preserve-digests")
        log = server.log()

    index_digest = oci_layout.resolve_tag(layout, "multi")["digest"]
    assert oci_layout.resolve_tag(tmp_path / "back", "multi")["digest"] == index_digest
    blobs = set()
    for child in json.loads(oci_layout.read_blob(layout, index_digest))["manifests"]:
        manifest = json.loads(oci_layout.read_blob(tmp_path / "back", child["digest"]))
        blobs |= {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    client = s3_server.minio()
    keys = sorted(o.object_name for o in client.list_objects(bucket, recursive=True))
    expected = sorted(f"up/blobs/sha256/{d[7:9]}/{d[7:]}" for d in blobs)
    assert keys == expected
    for digest in blobs:
        response = client.get_object(bucket, f"up/blobs/sha256/{digest[7:9]}/{digest[7:]}")
        try:
            stored = response.read()
        finally:
            response.close()
            response.release_conn()
        assert "sha256:" + hashlib.sha256(stored).hexdigest() == digest
        assert stored == oci_layout.read_blob(tmp_path / "back", digest)
    assert f"blobs: s3://{bucket}/up at {s3_server.endpoint}" in log
    assert s3_server.secret_key not in log and s3_server.access_key not in log
