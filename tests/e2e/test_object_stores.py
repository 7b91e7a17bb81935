"""skopeo and docker push and pull multi-platform images through feeds on S3 and Azure Blob.

Issue 15, part 5. One ``berth up`` (the machine's PostgreSQL and NATS) has four named stores
(docs/CONFIGURATION.md, "Stores"): ``s3`` and ``azure`` answer a blob GET with ``307`` to a
presigned URL on the store, ``s3stream`` and ``azstream`` (``redirect: false``) stream the blob
through Berth. S3 is the tests' S3 server (a moto server here, MinIO with containers), Azure is
Azurite (``tests/support/stores.py``). Each test checks the digests of what the client pulled
and that the content is in the store, at its content address, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, inspect_raw, skopeo_copy
from tests.e2e.conftest import fresh_name, scratch_database, scratch_stream
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, BerthProcess, berth_process
from tests.support.daemons import DockerDaemon, docker_daemon, have_daemons, scratch_context
from tests.support.databases import NATS_URL
from tests.support.stores import AzureServer, S3Server

pytestmark = pytest.mark.e2e

MiB = 1 << 20
AUTH = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
REDIRECTING = ("s3", "azure")
STREAMING = ("s3stream", "azstream")
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class StoresBerth:
    """The server, and where each named store keeps its objects."""

    server: BerthProcess
    s3: S3Server
    azure: AzureServer
    bucket: str
    container: str

    def new_feed(self, store: str) -> str:
        """Create a fresh feed on ``store``; return its name."""
        feed = fresh_name("st")
        r = httpx.post(
            f"{self.server.url}/api/feeds", json={"name": feed, "store": store}, auth=AUTH, timeout=30
        )
        assert r.status_code == 201, r.text
        return feed

    def stored(self, store: str, digest: str) -> bytes:
        """The bytes the store holds at ``digest``'s content address (read from the store itself).

        Raises:
            AssertionError: the store has no such object.
        """
        hexdigest = digest.removeprefix("sha256:")
        key = f"{'redirect' if store in REDIRECTING else 'stream'}/blobs/sha256/{hexdigest[:2]}/{hexdigest}"
        if store.startswith("s3"):
            response = self.s3.minio().get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        return asyncio.run(self._azure_blob(key))

    async def _azure_blob(self, key: str) -> bytes:
        async with self.azure.service() as service:
            blob = service.get_blob_client(self.container, key)
            return bytes(await (await blob.download_blob()).readall())


@pytest.fixture(scope="module")
def stores_berth(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, azure_server: AzureServer
) -> Iterator[StoresBerth]:
    """``berth up`` with stores s3, s3stream (one bucket, two prefixes) and azure, azstream (one
    container, two prefixes); credentials come from environment variables the config names."""
    workdir = tmp_path_factory.mktemp("stores")
    bucket = s3_server.new_bucket()
    container = asyncio.run(azure_server.new_container())
    s3 = {"kind": "s3", "bucket": bucket, "endpoint": s3_server.endpoint, "region": s3_server.region,
          "access_key_env": "E2E_S3_KEY", "secret_key_env": "E2E_S3_SECRET"}  # fmt: skip
    azure = {"kind": "azure", "account_name": azure_server.account_name, "container": container,
             "endpoint": azure_server.endpoint, "account_key_env": "E2E_AZURE_KEY"}  # fmt: skip
    stores = {
        "s3": {**s3, "prefix": "redirect"},
        "s3stream": {**s3, "prefix": "stream", "redirect": False},
        "azure": {**azure, "prefix": "redirect"},
        "azstream": {**azure, "prefix": "stream", "redirect": False},
    }
    config = workdir / "berth.yaml"
    config.write_text(yaml.safe_dump({"stores": stores}))
    env = {"BERTH_CONFIG": str(config), "E2E_S3_KEY": s3_server.access_key,
           "E2E_S3_SECRET": s3_server.secret_key, "E2E_AZURE_KEY": azure_server.account_key}  # fmt: skip
    with (
        scratch_database() as database_url,
        scratch_stream() as stream,
        berth_process(
            workdir, database_url=database_url, nats_url=NATS_URL, stream=stream, env=env
        ) as server,
    ):
        yield StoresBerth(server, s3_server, azure_server, bucket, container)
        log = server.log()
    for secret in (s3_server.secret_key, azure_server.account_key):
        assert secret not in log, "a store credential appeared in Berth's log"


def _children(layout: Path, tag: str) -> tuple[str, list[str]]:
    index_digest = oci_layout.resolve_tag(layout, tag)["digest"]
    children = json.loads(oci_layout.read_blob(layout, index_digest))["manifests"]
    return index_digest, [m["digest"] for m in children]


@pytest.mark.parametrize("store", [*REDIRECTING, *STREAMING])
def test_skopeo_multi_platform_index_round_trip(
    stores_berth: StoresBerth, store: str, layout: Path, tmp_path: Path
) -> None:
    """``skopeo copy --all --preserve-digests`` of a two-platform OCI index into a feed on the
    store and back: the index, both child manifests and every config and layer keep their
    digests and bytes, and each blob is in the store at its content address."""
    host = stores_berth.server.host
    repo = f"{stores_berth.new_feed(store)}/multi"
    remote = docker_ref(host, repo, "multi")
    index_digest, children = _children(layout, "multi")

    skopeo_copy(f"oci:{layout}:multi", remote, "--all", "--preserve-digests")
    back = tmp_path / "back"
    skopeo_copy(remote, f"oci:{back}:multi", "--all", "--preserve-digests")

    raw = inspect_raw(remote)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_digest
    assert oci_layout.resolve_tag(back, "multi")["digest"] == index_digest
    blobs = []
    for child in children:
        manifest = oci_layout.read_blob(back, child)
        assert manifest == oci_layout.read_blob(layout, child)
        parsed = json.loads(manifest)
        blobs += [parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])]
    assert len(blobs) == 4
    for digest in blobs:
        pulled = oci_layout.read_blob(back, digest)
        assert "sha256:" + hashlib.sha256(pulled).hexdigest() == digest
        assert pulled == oci_layout.read_blob(layout, digest)
        assert stores_berth.stored(store, digest) == pulled


def _push_blob(server: BerthProcess, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = httpx.post(
        f"{server.url}/v2/{repo}/blobs/uploads/?digest={digest}", content=data, auth=AUTH, timeout=60
    )
    assert r.status_code == 201, r.text
    return digest


@pytest.mark.parametrize("store", REDIRECTING)
def test_blob_get_redirects_to_the_store_and_ranges_work_there(stores_berth: StoresBerth, store: str) -> None:
    """A blob GET answers ``307`` to a URL signed for the store's endpoint (S3: SigV4 query,
    checked by inspection — moto checks no signatures; Azure: a SAS, which Azurite checks, so a
    tampered one is refused); the client's ``Range`` then works against the store. HEAD answers
    from Berth's records without a redirect."""
    server = stores_berth.server
    repo = f"{stores_berth.new_feed(store)}/blobs"
    data = os.urandom(3 * MiB + 17)
    digest = _push_blob(server, repo, data)
    url = f"{server.url}/v2/{repo}/blobs/{digest}"

    head = httpx.head(url, auth=AUTH, timeout=30)
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))
    r = httpx.get(url, auth=AUTH, timeout=30, follow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["docker-content-digest"] == digest
    location = r.headers["location"]
    endpoint = stores_berth.s3.endpoint if store == "s3" else stores_berth.azure.endpoint
    assert location.startswith(f"{endpoint}/"), location
    query = parse_qs(urlsplit(location).query)
    hexdigest = digest.removeprefix("sha256:")
    if store == "s3":
        assert (
            urlsplit(location).path
            == f"/{stores_berth.bucket}/redirect/blobs/sha256/{hexdigest[:2]}/{hexdigest}"
        )
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["1200"]
        assert query["X-Amz-Credential"][0].startswith(f"{stores_berth.s3.access_key}/")
    else:
        assert query["sp"] == ["r"] and "sig" in query
        tampered = location.replace("sp=r", "sp=rw")
        assert httpx.get(tampered, timeout=30).status_code == 403

    ranged = httpx.get(location, headers={"Range": "bytes=1048570-2097159"}, timeout=30)
    assert ranged.status_code == 206, ranged.text
    assert ranged.content == data[1048570:2097160]
    whole = httpx.get(url, auth=AUTH, timeout=60, follow_redirects=True)
    assert whole.status_code == 200 and whole.content == data
    assert stores_berth.stored(store, digest) == data


@pytest.mark.parametrize("store", STREAMING)
def test_streaming_store_serves_blobs_and_ranges_through_berth(stores_berth: StoresBerth, store: str) -> None:
    """With ``redirect: false`` the blob comes through Berth: ``200`` with the whole blob,
    ``206`` with exactly the asked range, ``416`` past the end; never a redirect."""
    server = stores_berth.server
    repo = f"{stores_berth.new_feed(store)}/blobs"
    data = os.urandom(6 * MiB + 5)
    digest = _push_blob(server, repo, data)
    url = f"{server.url}/v2/{repo}/blobs/{digest}"

    whole = httpx.get(url, auth=AUTH, timeout=60, follow_redirects=False)
    assert whole.status_code == 200, whole.text
    assert whole.content == data and whole.headers["docker-content-digest"] == digest
    for first, last in ((0, 0), (5 * MiB - 3, 6 * MiB + 4), (MiB, 3 * MiB)):
        r = httpx.get(url, auth=AUTH, headers={"Range": f"bytes={first}-{last}"}, timeout=60)
        assert r.status_code == 206, r.text
        assert r.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
        assert r.content == data[first : last + 1]
    past = httpx.get(url, auth=AUTH, headers={"Range": f"bytes={len(data)}-"}, timeout=30)
    assert past.status_code == 416, past.text
    assert stores_berth.stored(store, digest) == data


@pytest.fixture(scope="module")
def dockerd(stores_berth: StoresBerth) -> Iterator[DockerDaemon]:
    """A private dockerd for this module, logged in to the server as the admin."""
    reason = have_daemons()
    if reason is not None:
        pytest.skip(reason)
    with docker_daemon() as daemon:
        daemon.login(stores_berth.server.host, ADMIN_USER, ADMIN_PASSWORD)
        yield daemon


@pytest.mark.parametrize("store", [*REDIRECTING, "s3stream"])
def test_docker_multi_platform_push_and_pull(
    stores_berth: StoresBerth, dockerd: DockerDaemon, store: str, tmp_path: Path
) -> None:
    """docker builds and pushes an amd64 and an arm64 image and a manifest list over them into a
    feed on the store; a clean daemon pulls each platform by the list's tag (following the 307
    to the store where the store redirects) and gets the same image id and the list's digest;
    every config and layer is in the store at its content address."""
    host = stores_berth.server.host
    repo = f"{stores_berth.new_feed(store)}/multi"
    ref = f"{host}/{repo}"
    files = {
        "amd64": {"/bin/busybox": oci_layout.BUSYBOX},
        "arm64": {"/usr/share/common-licenses": oci_layout.LICENSES},
    }
    ids, children = {}, {}
    for arch in ("amd64", "arm64"):
        context = scratch_context(tmp_path / arch, files[arch])
        ids[arch] = dockerd.build(context, f"{ref}:{arch}", platform=f"linux/{arch}")
        children[arch] = dockerd.push(f"{ref}:{arch}")
    dockerd.docker("manifest", "create", "--insecure", f"{ref}:latest", f"{ref}:amd64", f"{ref}:arm64")
    index_digest = dockerd.docker("manifest", "push", "--insecure", f"{ref}:latest").stdout.strip()
    r = httpx.get(
        f"http://{host}/v2/{repo}/manifests/latest", headers={"Accept": MANIFEST_LIST}, auth=AUTH, timeout=30
    )
    assert r.status_code == 200 and r.headers["docker-content-digest"] == index_digest, r.text
    assert {m["platform"]["architecture"]: m["digest"] for m in r.json()["manifests"]} == children

    for arch in ("arm64", "amd64"):
        dockerd.clean()
        dockerd.docker("pull", "--platform", f"linux/{arch}", f"{ref}:latest")
        assert dockerd.image(f"{ref}:latest", "{{.Architecture}} {{.Id}}") == f"{arch} {ids[arch]}"
        assert f"{ref}@{index_digest}" in dockerd.image(f"{ref}:latest", "{{json .RepoDigests}}")
    for arch in ("amd64", "arm64"):
        r = httpx.get(
            f"http://{host}/v2/{repo}/manifests/{children[arch]}",
            headers={"Accept": SCHEMA2},
            auth=AUTH,
            timeout=30,
        )
        manifest = r.json()
        for blob in [manifest["config"], *manifest["layers"]]:
            stored = stores_berth.stored(store, blob["digest"])
            assert "sha256:" + hashlib.sha256(stored).hexdigest() == blob["digest"]
