"""Real clients against ``berth up --tls``, trusting its CA the documented ways (issue 3 §3-4).

One server for the module, started by ``berth_process(tls=True)``. User ``alice`` may view, add
and delete in ``feed``, only view ``readable``, and nothing in ``hidden``; an API key (made with
``berth key create``, so the CLI is exercised over TLS with ``SSL_CERT_FILE``) acts for alice
on ``feed``. skopeo and podman trust the CA through ``--cert-dir`` (a folder with ``ca.crt``),
Python clients through ``SSL_CERT_FILE`` / a CA bundle path; every login and push goes through
the token flow with the realm ``https://HOST/token``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import oras.client
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import Podman, run
from tests.e2e.conftest import Registry, fresh_name, scratch_database, scratch_stream
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, REPO_ROOT, berth_process
from tests.support.databases import NATS_URL

pytestmark = pytest.mark.e2e

ALICE, ALICE_PASSWORD = "alice", "alice-tls-secret"


@dataclass
class TlsWorld:
    """The TLS server, its CA (as ``cert_dir/ca.crt``) and the feeds alice sees."""

    registry: Registry
    cert_dir: Path
    feed: str  # alice: view, add, delete
    readable: str  # alice: view
    hidden: str  # alice: nothing
    api_key: str  # user ``api``: alice's key, limited to ``feed`` (view, add)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return self.registry.host

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust."""
        return self.cert_dir / "ca.crt"

    def ref(self, repo: str, tag: str) -> str:
        """``docker://HOST/REPO:TAG`` (or ``@DIGEST``)."""
        sep = "@" if tag.startswith("sha256:") else ":"
        return f"docker://{self.host}/{repo}{sep}{tag}"


def berth_cli(server_url: str, ca: Path, *args: str, stdin: str | None = None) -> str:
    """Run ``uv run berth ARGS`` as the admin against ``server_url``, trusting ``ca``, with
    ``stdin`` piped in; stdout.

    Raises:
        AssertionError: if the command fails (message holds its output).
    """
    env = {
        **os.environ,
        "BERTH_URL": server_url,
        "SSL_CERT_FILE": str(ca),
        "BERTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COLUMNS": "400",
    }
    proc = subprocess.run(
        ["uv", "run", "berth", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, f"berth {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsWorld]:
    """``berth up --tls`` on a fresh database and stream, with alice, her grants and an API key."""
    workdir = tmp_path_factory.mktemp("tls")
    with (
        scratch_database() as database_url,
        scratch_stream() as stream,
        berth_process(
            workdir, database_url=database_url, nats_url=NATS_URL, stream=stream, tls=True
        ) as server,
    ):
        cert_dir = workdir / "certs"
        cert_dir.mkdir()
        shutil.copy(server.ca_file, cert_dir / "ca.crt")
        registry = Registry(host=server.host, kind="berth", server=server, database_url=database_url)
        feed, readable, hidden = (registry.new_feed() for _ in range(3))
        berth_cli(server.url, server.ca_file, "user", "add", ALICE, "--password-stdin", stdin=ALICE_PASSWORD)
        with httpx.Client(
            base_url=server.url,
            verify=server.verify,
            timeout=30,
            auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
        ) as admin:
            for privilege, on in (("view", feed), ("add", feed), ("delete", feed), ("view", readable)):
                r = admin.post(
                    "/api/privileges",
                    json={
                        "principal_kind": "user",
                        "principal": ALICE,
                        "privilege": privilege,
                        "feed": on,
                        "effect": "grant",
                    },
                )
                assert r.status_code == 201, r.text
        out = berth_cli(
            server.url,
            server.ca_file,
            "key",
            "create",
            "--owner",
            ALICE,
            "--feed",
            feed,
            "--privilege",
            "view",
            "--privilege",
            "add",
        )
        match = re.search(r"key \S+: (\S+)", out)
        assert match, out
        yield TlsWorld(registry, cert_dir, feed, readable, hidden, match[1])


def login(world: TlsWorld, tool: list[str], authfile: Path, user: str, password: str) -> None:
    """``TOOL login`` to the server over verified TLS, storing credentials in ``authfile``."""
    run(
        [
            *tool,
            "login",
            "--cert-dir",
            str(world.cert_dir),
            "--authfile",
            str(authfile),
            "-u",
            user,
            "-p",
            password,
            world.host,
        ]
    )


def skopeo_copy(world: TlsWorld, authfile: Path, src: str, dest: str) -> None:
    """``skopeo copy`` with both ends trusting the CA and using ``authfile``."""
    run(
        [
            "skopeo",
            "copy",
            "--authfile",
            str(authfile),
            "--src-cert-dir",
            str(world.cert_dir),
            "--dest-cert-dir",
            str(world.cert_dir),
            src,
            dest,
        ]
    )


def test_realm_is_https(world: TlsWorld) -> None:
    """The challenge names the token service on the HTTPS URL clients use."""
    server = world.registry.server
    assert server is not None
    r = httpx.get(f"{server.url}/v2/", verify=server.verify)
    assert r.status_code == 401
    assert f'realm="https://{world.host}/token"' in r.headers["www-authenticate"]


def test_untrusted_certificate_is_refused(world: TlsWorld, tmp_path: Path) -> None:
    """Without the CA a client refuses the server: TLS is really verified in these tests."""
    proc = run(
        ["skopeo", "inspect", "--authfile", str(tmp_path / "none.json"), world.ref(f"{world.feed}/x", "v1")],
        check=False,
    )
    assert proc.returncode != 0
    assert "certificate" in (proc.stdout + proc.stderr).lower()


def test_skopeo_login_push_pull_delete(world: TlsWorld, layout: Path, tmp_path: Path) -> None:
    """alice logs in, pushes, pulls the same digest back, deletes; the tag is then gone."""
    authfile = tmp_path / "auth.json"
    login(world, ["skopeo"], authfile, ALICE, ALICE_PASSWORD)
    repo = f"{world.feed}/skopeo"
    skopeo_copy(world, authfile, f"oci:{layout}:v1", world.ref(repo, "v1"))
    skopeo_copy(world, authfile, world.ref(repo, "v1"), f"oci:{tmp_path / 'back'}:v1")
    digest = oci_layout.resolve_tag(layout, "v1")["digest"]
    assert oci_layout.resolve_tag(tmp_path / "back", "v1")["digest"] == digest

    run(
        [
            "skopeo",
            "delete",
            "--cert-dir",
            str(world.cert_dir),
            "--authfile",
            str(authfile),
            world.ref(repo, digest),
        ]
    )
    gone = run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--cert-dir",
            str(world.cert_dir),
            "--authfile",
            str(authfile),
            world.ref(repo, "v1"),
        ],
        check=False,
    )
    assert gone.returncode != 0, "a deleted manifest is still served"


def test_podman_login_push_pull(world: TlsWorld, layout: Path, podman: Podman, tmp_path: Path) -> None:
    """podman logs in as alice, pushes a local image and pulls it back over verified TLS."""
    authfile = str(tmp_path / "auth.json")
    login(world, podman.base_cmd(), Path(authfile), ALICE, ALICE_PASSWORD)
    podman("pull", f"oci:{layout}:v1")
    local = podman("images", "--format", "{{.ID}}").stdout.split()[0]
    image = f"{world.host}/{world.feed}/podman:v1"
    tls = ["--cert-dir", str(world.cert_dir), "--authfile", authfile]
    podman("push", *tls, local, image)
    podman("rmi", "--all", "--force")
    podman("pull", *tls, image)
    assert podman("image", "inspect", "--format", "{{.Architecture}}", image).stdout.strip() == "amd64"


def test_api_key_login(world: TlsWorld, layout: Path, tmp_path: Path) -> None:
    """``api`` + key logs in and pushes to its feed; an image that exists in another feed is
    refused (401, not 404: the key's feed limit decides, not the image's absence)."""
    admin_auth = tmp_path / "admin.json"
    login(world, ["skopeo"], admin_auth, ADMIN_USER, ADMIN_PASSWORD)
    skopeo_copy(world, admin_auth, f"oci:{layout}:v1", world.ref(f"{world.readable}/bykey", "v1"))
    authfile = tmp_path / "auth.json"
    login(world, ["skopeo"], authfile, "api", world.api_key)
    skopeo_copy(world, authfile, f"oci:{layout}:v1", world.ref(f"{world.feed}/bykey", "v1"))
    digest = oci_layout.resolve_tag(layout, "v1")["digest"]
    raw = run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--cert-dir",
            str(world.cert_dir),
            "--authfile",
            str(authfile),
            world.ref(f"{world.feed}/bykey", "v1"),
        ]
    ).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest
    other = run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--cert-dir",
            str(world.cert_dir),
            "--authfile",
            str(authfile),
            world.ref(f"{world.readable}/bykey", "v1"),
        ],
        check=False,
    )
    assert other.returncode != 0
    assert "unauthorized" in other.stderr.lower(), other.stderr
    assert "manifest unknown" not in other.stderr.lower(), other.stderr


def test_oras_with_token_over_tls(world: TlsWorld, tmp_path: Path) -> None:
    """oras (requests) trusts the CA bundle it is given and gets tokens from the HTTPS realm."""
    target = f"{world.host}/{world.feed}/oras:art"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(256 * 1024 + 3))
    client = oras.client.OrasClient(hostname=world.host, tls_verify=str(world.ca))
    client.auth.set_basic_auth(ALICE, ALICE_PASSWORD)
    client.push(
        target=target,
        files=[f"{payload}:application/vnd.berth.tls.file"],
        disable_path_validation=True,
        quiet=True,
    )
    files = client.pull(target=target, outdir=str(tmp_path / "out"))
    assert Path(files[0]).read_bytes() == payload.read_bytes()


def push_blob(client: httpx.Client, repo: str, data: bytes, auth: httpx.Auth) -> str:
    """Monolithic blob upload (POST ``?digest=``) to ``repo``; the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
    )
    assert r.status_code == 201, r.text
    return digest


def bearer(client: httpx.Client, user: str, password: str, *scopes: str) -> tuple[str, list[dict[str, Any]]]:
    """The token dance by hand: ``GET /token`` for ``scopes``; (token, its granted ``access``)."""
    r = client.get(
        "/token", params=[("service", "berth"), *(("scope", s) for s in scopes)], auth=(user, password)
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    return token, jwt.decode(token, options={"verify_signature": False})["access"]


def test_cross_repository_mount(world: TlsWorld) -> None:
    """Mounting needs pull on the source in the token (Berth mounts within one feed: one store).

    Readable source in the same feed: 201 and one ``blob.mounted``. A token without pull on the
    source, or a source in a feed alice may not read: a plain upload session (202), the same as
    for a blob that does not exist; nothing is linked.
    """
    server = world.registry.server
    assert server is not None
    src, hidden_src, target = f"{world.feed}/src", f"{world.hidden}/src", f"{world.feed}/mounted"
    with httpx.Client(base_url=server.url, verify=server.verify, timeout=30) as http:
        admin = RegistryAuth(ADMIN_USER, ADMIN_PASSWORD)
        visible, unasked, secret = (
            push_blob(http, repo, os.urandom(1024), admin) for repo in (src, src, hidden_src)
        )
        missing = "sha256:" + hashlib.sha256(fresh_name().encode()).hexdigest()
        before = world.registry.mount_count() or 0

        token, _ = bearer(
            http, ALICE, ALICE_PASSWORD, f"repository:{target}:pull,push", f"repository:{src}:pull"
        )
        ok = mount(http, token, target, visible, src)
        assert ok.status_code == 201, ok.text
        assert ok.headers["location"] == f"/v2/{target}/blobs/{visible}"
        assert world.registry.mount_count() == before + 1

        token, access = bearer(
            http, ALICE, ALICE_PASSWORD, f"repository:{target}:pull,push", f"repository:{hidden_src}:pull"
        )
        assert all(a["name"] != hidden_src or not a["actions"] for a in access)
        narrow, _ = bearer(http, ALICE, ALICE_PASSWORD, f"repository:{target}:pull,push")
        fallbacks = [
            mount(http, narrow, target, unasked, src),
            mount(http, token, target, secret, hidden_src),
            mount(http, token, target, missing, hidden_src),
        ]
        for r in fallbacks:
            assert r.status_code == 202, r.text
            assert r.headers["location"].startswith(f"/v2/{target}/blobs/uploads/")
            assert r.content == b""
        assert len({frozenset(r.headers) for r in fallbacks}) == 1  # nothing tells them apart
        assert world.registry.mount_count() == before + 1
        for digest in (unasked, secret):
            assert http.head(f"/v2/{target}/blobs/{digest}", auth=admin).status_code == 404


def mount(client: httpx.Client, token: str, repo: str, digest: str, source: str) -> httpx.Response:
    """``POST /v2/REPO/blobs/uploads/?mount=DIGEST&from=SOURCE`` with ``token``."""
    return client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"mount": digest, "from": source},
        headers={"Authorization": f"Bearer {token}"},
    )
