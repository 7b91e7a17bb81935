"""Pulls through connectors with real clients and real upstreams (docs/ARCHITECTURE.md, "Connectors").

``berth up`` (a fresh database and stream; its data dir makes the connectors key) with the
default feed ``hub``; upstreams are CNCF Distribution 2.8 — anonymous, with htpasswd, with token
auth (``tests.support.token_server``) — and a second ``berth up`` (a chain feed → feed →
registry). skopeo, podman, docker and ctr pull single images and multi-platform indexes
through the connector; digests must come through unchanged. Connectors are added with the CLI
(``berth connector add … --password-stdin``); the upstream password must appear in no log line
and no API answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import Podman, docker_ref, inspect_raw, run, skopeo_copy
from tests.e2e.conftest import fresh_name, scratch_database, scratch_stream
from tests.spec.helpers import push_image
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, BerthProcess, berth_process
from tests.support.daemons import Containerd, containerd_daemon, docker_daemon, have_daemons
from tests.support.databases import NATS_URL
from tests.support.upstream import PASSWORD, USER, Distribution, distribution

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]
HUB = "hub"
needs_daemons = pytest.mark.skipif(have_daemons() is not None, reason=str(have_daemons()))


@contextlib.contextmanager
def berth(workdir: Path, **env: str) -> Iterator[BerthProcess]:
    """``berth up`` on a fresh database and stream, with ``env`` (``BERTH_…``) set."""
    with (
        pytest.MonkeyPatch.context() as patch,
        scratch_database() as database_url,
        scratch_stream() as stream,
    ):
        for key, value in env.items():
            patch.setenv(key, value)
        with berth_process(workdir, database_url=database_url, nats_url=NATS_URL, stream=stream) as server:
            yield server


def cli(server: BerthProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``uv run berth ARGS --url URL`` as the admin; checked."""
    env = {**os.environ, "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "COLUMNS": "250"}
    proc = subprocess.run(
        ["uv", "run", "berth", *args, "--url", server.url], cwd=REPO_ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"berth {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def admin(server: BerthProcess, method: str, path: str, **kwargs: object) -> httpx.Response:
    """An admin API call (raises on failure)."""
    r = httpx.request(method, f"{server.url}{path}", auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
                      timeout=60, **kwargs)  # type: ignore[arg-type]  # fmt: skip
    assert r.status_code < 400, r.text
    return r


def feed_with_connector(server: BerthProcess, upstream: str, *options: str, stdin: str | None = None) -> str:
    """A new feed of ``server`` with a connector to ``upstream`` (through the CLI)."""
    feed = fresh_name("cf")
    server.create_feed(feed)
    cli(server, "connector", "add", feed, upstream, *options, stdin=stdin)
    return feed


def seed_upstream(host: str, layout: Path, repo: str, *creds: str) -> None:
    """Copy ``v1`` (busybox) and ``multi`` (an amd64 + arm64 index) of ``layout`` to ``host``."""
    skopeo_copy(f"oci:{layout}:v1", f"docker://{host}/{repo}:v1", *creds)
    skopeo_copy(f"oci:{layout}:multi", f"docker://{host}/{repo}:multi", "--all", "--preserve-digests", *creds)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, layout: Path) -> Iterator[Distribution]:
    """Anonymous Distribution holding ``library/busybox`` (``v1``, ``multi``, ``latest``)."""
    with distribution(tmp_path_factory.mktemp("anon")) as running:
        seed_upstream(running.host, layout, "library/busybox")
        skopeo_copy(f"oci:{layout}:v1", f"docker://{running.host}/library/busybox:latest")
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Distribution) -> Iterator[BerthProcess]:
    """``berth up`` whose default feed ``hub`` (public) mirrors the anonymous upstream."""
    with berth(tmp_path_factory.mktemp("berth"), BERTH_DEFAULT_FEED=HUB) as running:
        admin(running, "POST", "/api/feeds", json={"name": HUB, "public": True})
        cli(running, "connector", "add", HUB, upstream.url, "--namespace", "library", "--tag-ttl", "10m")
        yield running


def upstream_digest(host: str, repo: str, ref: str) -> str:
    """The manifest digest ``host`` serves for ``repo:ref``."""
    return oci_layout.sha256_digest(inspect_raw(f"docker://{host}/{repo}:{ref}"))


def test_skopeo_pulls_an_image_and_an_index_through_a_connector(
    server: BerthProcess, upstream: Distribution, tmp_path: Path
) -> None:
    feed = feed_with_connector(server, f"{upstream.url}/library")
    for ref, extra in (("v1", ()), ("multi", ("--all", "--preserve-digests"))):
        skopeo_copy(docker_ref(server.host, f"{feed}/busybox", ref), f"oci:{tmp_path / 'out'}:{ref}", *extra)
        assert inspect_raw(docker_ref(server.host, f"{feed}/busybox", ref)) == inspect_raw(
            f"docker://{upstream.host}/library/busybox:{ref}"
        )
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    pulled = {m["annotations"][oci_layout.REF_NAME]: m["digest"] for m in index["manifests"]}
    assert pulled == {r: upstream_digest(upstream.host, "library/busybox", r) for r in ("v1", "multi")}
    tags = admin(server, "GET", f"/api/repositories/{feed}/busybox/tags").json()
    assert {t["tag"]: t["origin"] for t in tags} == {
        r: f"{upstream.url}/library/busybox" for r in ("v1", "multi")
    }


def test_podman_pulls_through_a_connector(
    server: BerthProcess, upstream: Distribution, podman: Podman
) -> None:
    feed = feed_with_connector(server, upstream.url, "--namespace", "library")
    for ref in ("v1", "multi"):  # an image, and a multi-platform index (podman takes amd64 of it)
        podman("pull", "--tls-verify=false", f"{server.host}/{feed}/busybox:{ref}")
        digests = podman(
            "image", "inspect", "--format", "{{.RepoDigests}}", f"{server.host}/{feed}/busybox:{ref}"
        )
        assert upstream_digest(upstream.host, "library/busybox", ref) in digests.stdout


@needs_daemons
def test_docker_and_ctr_pull_through_a_connector(server: BerthProcess, upstream: Distribution) -> None:
    feed = feed_with_connector(server, upstream.url, "--namespace", "library")
    with docker_daemon() as dockerd:
        dockerd.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
        for ref in ("v1", "multi"):
            dockerd.docker("pull", f"{server.host}/{feed}/busybox:{ref}")
            repo_digest = dockerd.image(f"{server.host}/{feed}/busybox:{ref}", "{{index .RepoDigests 0}}")
            assert repo_digest.endswith(upstream_digest(upstream.host, "library/busybox", ref))
    with containerd_daemon() as containerd:
        for ref in ("v1", "multi"):
            target = f"{server.host}/{feed}/busybox:{ref}"
            containerd.ctr("images", "pull", "--plain-http", f"--user={ADMIN_USER}:{ADMIN_PASSWORD}",
                           *(["--all-platforms"] if ref == "multi" else []), target)  # fmt: skip
            assert _ctr_digest(containerd, target) == upstream_digest(upstream.host, "library/busybox", ref)


def _ctr_digest(containerd: Containerd, ref: str) -> str:
    for line in containerd.ctr("images", "ls").stdout.splitlines()[1:]:
        cells = line.split()
        if cells and cells[0] == ref:
            return cells[2]
    raise AssertionError(f"{ref} not in ctr images ls")


@needs_daemons
def test_a_docker_daemon_with_registry_mirrors_pulls_busybox_through_the_default_feed(
    server: BerthProcess, upstream: Distribution
) -> None:
    with docker_daemon(config={"registry-mirrors": [server.url]}) as dockerd:
        dockerd.docker("pull", "busybox")  # docker.io/library/busybox:latest, through the mirror
        repo_digest = dockerd.image("busybox", "{{index .RepoDigests 0}}")
        assert repo_digest == f"busybox@{upstream_digest(upstream.host, 'library/busybox', 'latest')}"
    tags = admin(server, "GET", f"/api/repositories/{HUB}/library/busybox/tags").json()
    assert "latest" in {t["tag"] for t in tags}
    assert upstream.count("GET", "/v2/library/busybox/manifests/latest") == 1


def test_upstream_down_cached_pull_works_uncached_fails_with_the_reason(
    server: BerthProcess, layout: Path, tmp_path: Path
) -> None:
    with distribution(tmp_path / "down") as flaky:
        skopeo_copy(f"oci:{layout}:v1", f"docker://{flaky.host}/app:v1")
        skopeo_copy(f"oci:{layout}:multi", f"docker://{flaky.host}/other:v1", "--all", "--preserve-digests")
        feed = feed_with_connector(server, flaky.url, "--tag-ttl", "0")
        skopeo_copy(docker_ref(server.host, f"{feed}/app", "v1"), f"oci:{tmp_path / 'a'}:v1")
        flaky.stop()
        skopeo_copy(docker_ref(server.host, f"{feed}/app", "v1"), f"oci:{tmp_path / 'b'}:v1")
        source = docker_ref(server.host, f"{feed}/other", "v1")
        failed = run(
            ["skopeo", "copy", "--src-tls-verify=false", source, f"oci:{tmp_path / 'c'}:v1"], check=False
        )
        assert failed.returncode != 0 and "503" in failed.stderr, failed.stderr  # skopeo shows no 5xx body
        r = httpx.get(
            f"{server.url}/v2/{feed}/other/manifests/v1", auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
        )
        assert r.status_code == 503, r.text
        error = r.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and flaky.host in error["message"]
        assert [reason for reason in error["detail"]["connectors"] if "unreachable" in reason]
        flaky.start()


async def test_a_corrupt_upstream_blob_cuts_the_clients_stream(server: BerthProcess, tmp_path: Path) -> None:
    with distribution(tmp_path / "bad") as bad:
        async with httpx.AsyncClient(base_url=bad.url, timeout=60) as up:
            pushed = await push_image(up, "app", "v1")  # its own random layer: nowhere else stored
        layer = oci_layout.sha256_digest(pushed.layers[0])
        bad.corrupt_blob(layer)
        feed = feed_with_connector(server, bad.url)
        auth = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
        async with httpx.AsyncClient(base_url=server.url, auth=auth, timeout=60) as c:
            with pytest.raises(httpx.RemoteProtocolError):  # the response ends short of its length
                await c.get(f"/v2/{feed}/app/blobs/{layer}")
            r = await c.head(f"/v2/{feed}/app/blobs/{layer}")
            assert r.status_code == 200  # known upstream, not stored: the next pull tries again
        log = server.log()
        assert "connector.blob_fetch_failed" in log and layer in log


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_authenticated_upstreams_and_the_password_stays_secret(
    server: BerthProcess, layout: Path, tmp_path: Path, auth: str
) -> None:
    with distribution(tmp_path / auth, auth) as secured:
        creds = f"--dest-creds={USER}:{PASSWORD}"
        seed_upstream(secured.host, layout, "team/app", creds)
        feed = feed_with_connector(server, f"{secured.url}/team", "--username", USER, "--password-stdin",
                                   stdin=PASSWORD + "\n")  # fmt: skip
        for ref, extra in (("v1", ()), ("multi", ("--all", "--preserve-digests"))):
            skopeo_copy(docker_ref(server.host, f"{feed}/app", ref), f"oci:{tmp_path / 'out'}:{ref}", *extra)
        if secured.tokens is not None:
            issued = secured.tokens.issued_to("berth-connector")
            assert set(issued) == {"repository:team/app:pull"} and secured.tokens.refused == 0
            assert len(issued) <= 2  # reused until it expires (one cache per service: api, blob)
        shown = cli(server, "connector", "list", feed).stdout
        listing = admin(server, "GET", f"/api/feeds/{feed}/connectors").text
        for text in (shown, listing, server.log()):  # the event store: test_connector_admin.py
            assert PASSWORD not in text
        assert USER in shown and "set" in shown


def test_a_chain_of_feeds_berth_to_berth_to_registry(
    server: BerthProcess, upstream: Distribution, tmp_path: Path
) -> None:
    with berth(tmp_path / "edge") as edge:
        middle = feed_with_connector(server, upstream.url, "--namespace", "library")
        feed = feed_with_connector(edge, f"{server.url}/{middle}", "--username", ADMIN_USER,
                                   "--password-stdin", stdin=ADMIN_PASSWORD + "\n")  # fmt: skip
        skopeo_copy(docker_ref(edge.host, f"{feed}/busybox", "multi"), f"oci:{tmp_path / 'o'}:multi",
                    "--all", "--preserve-digests")  # fmt: skip
        expected = inspect_raw(f"docker://{upstream.host}/library/busybox:multi")
        assert inspect_raw(docker_ref(edge.host, f"{feed}/busybox", "multi")) == expected
        assert inspect_raw(docker_ref(server.host, f"{middle}/busybox", "multi")) == expected
        origin = admin(edge, "GET", f"/api/repositories/{feed}/busybox/tags").json()[0]["origin"]
        assert origin == f"{server.url}/{middle}/busybox"
        assert ADMIN_PASSWORD not in edge.log()
