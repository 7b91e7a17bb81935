"""docker login, logout and privileges against Berth's token service, with a private dockerd.

Pins the docker client's token behaviour: ``docker login`` asks ``GET /token`` with
``offline_token=true`` and keeps the returned refresh token as ``identitytoken`` in
``config.json`` (not the password); every later push or pull redeems it with
``POST /token grant_type=refresh_token``. Denials reach the user as docker's usual messages,
with Berth's reason: an ``insufficient_scope`` challenge becomes ``denied: <its
error_description>`` (without one docker says "requested access to the resource is denied").
Users, grants and keys are made through the admin API that ``berth user add``, ``berth grant``
and ``berth key create`` call. TLS (``berth up --tls``) is the last test.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.conftest import Registry, _run_sync, fresh_name, scratch_database, scratch_stream
from tests.support.berth_process import ADMIN_PASSWORD, ADMIN_USER, berth_process
from tests.support.daemons import DockerDaemon, docker_daemon, have_daemons, scratch_context
from tests.support.databases import NATS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(have_daemons() is not None, reason=str(have_daemons()))]

CERTS_D = Path("/etc/docker/certs.d")


@pytest.fixture(scope="module")
def berth(registry: Registry) -> Registry:
    """The registry under test, which must be Berth (the reference has no token service here)."""
    if registry.server is None:
        pytest.skip("auth cases need Berth's token service")
    return registry


@pytest.fixture(scope="module")
def dockerd(berth: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A private dockerd for this module with the local image ``berth-e2e/busybox:v1`` built."""
    with docker_daemon() as daemon:
        context = scratch_context(tmp_path_factory.mktemp("ctx"), {"/bin/busybox": oci_layout.BUSYBOX})
        daemon.build(context, "berth-e2e/busybox:v1")
        yield daemon


def admin(registry: Registry, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One admin API call as the admin (what the ``berth`` CLI does); the JSON answer or ``{}``."""
    r = httpx.request(
        method,
        f"http://{registry.host}/api{path}",
        json=body,
        timeout=30.0,
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
    )
    assert r.status_code < 300, f"{method} /api{path} -> {r.status_code}: {r.text}"
    return r.json() if r.content else {}


def new_user(registry: Registry, grants: dict[str, list[str]]) -> tuple[str, str]:
    """A fresh user with ``grants`` (feed -> privileges, e.g. ``{"f": ["view", "add"]}``)."""
    name, password = fresh_name("u"), fresh_name("pw")
    admin(registry, "POST", "/users", {"name": name, "password": password, "email": ""})
    for feed, privileges in grants.items():
        for privilege in privileges:
            admin(
                registry,
                "POST",
                "/privileges",
                {
                    "principal_kind": "user",
                    "principal": name,
                    "privilege": privilege,
                    "feed": feed,
                    "effect": "grant",
                },
            )
    return name, password


def count_events(registry: Registry, type_name: str) -> int:
    """How many events of ``type_name`` the event store holds."""

    async def fetch() -> int:
        conn = await asyncpg.connect(registry.database_url)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM eventstore.events WHERE type = $1", type_name)
            )
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()  # leaves pytest-asyncio's session loop alone
    try:
        return loop.run_until_complete(fetch())
    finally:
        loop.close()


def push_pull(dockerd: DockerDaemon, ref: str) -> str:
    """Tag the local busybox image as ``ref``, push it, clean the daemon, pull by digest."""
    dockerd.docker("tag", "berth-e2e/busybox:v1", ref)
    digest = dockerd.push(ref)
    dockerd.clean()
    dockerd.docker("pull", f"{ref.rsplit(':', 1)[0]}@{digest}")
    dockerd.docker("tag", f"{ref.rsplit(':', 1)[0]}@{digest}", "berth-e2e/busybox:v1")
    return digest


def test_password_login_keeps_a_refresh_token_and_push_pull_twice(
    berth: Registry, dockerd: DockerDaemon
) -> None:
    """Login stores ``identitytoken`` (one ``refreshtoken.issued``), never the password; two rounds
    of push + pull with the cached credentials issue no further refresh tokens."""
    feed = berth.new_feed()
    user, password = new_user(berth, {feed: ["view", "add"]})
    wrong = dockerd.login(berth.host, user, "wrong-password", check=False)
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower(), wrong.stderr
    before = count_events(berth, "refreshtoken.issued")
    dockerd.login(berth.host, user, password)
    stored = dockerd.credentials(berth.host)
    assert stored["identitytoken"]
    assert base64.b64decode(stored["auth"]).decode() == f"{user}:"
    assert count_events(berth, "refreshtoken.issued") == before + 1

    for tag in ("first", "second"):
        push_pull(dockerd, f"{berth.host}/{feed}/app:{tag}")
    assert count_events(berth, "refreshtoken.issued") == before + 1
    dockerd.docker("logout", berth.host)


def test_api_key_login_and_its_ceiling(berth: Registry, dockerd: DockerDaemon) -> None:
    """``docker login -u api`` with a key pushes and pulls; a view-only key pulls, push is denied."""
    feed = berth.new_feed()
    owner, _ = new_user(berth, {feed: ["view", "add"]})
    writer = admin(berth, "POST", "/keys", {"owner": owner, "feeds": [feed], "privileges": ["view", "add"]})
    reader = admin(berth, "POST", "/keys", {"owner": owner, "feeds": [feed], "privileges": ["view"]})

    dockerd.login(berth.host, "api", writer["key"])
    digest = push_pull(dockerd, f"{berth.host}/{feed}/app:v1")

    dockerd.login(berth.host, "api", reader["key"])
    dockerd.clean()
    dockerd.docker("pull", f"{berth.host}/{feed}/app@{digest}")
    dockerd.docker("tag", f"{berth.host}/{feed}/app@{digest}", f"{berth.host}/{feed}/app:v2")
    refused = dockerd.docker("push", f"{berth.host}/{feed}/app:v2", check=False)
    reason = f"denied: insufficient privileges: api-key:{reader['key_id']} may not push {feed}/app"
    assert refused.returncode != 0 and reason in refused.stderr, refused.stderr
    dockerd.docker("tag", f"{berth.host}/{feed}/app@{digest}", "berth-e2e/busybox:v1")
    dockerd.docker("logout", berth.host)


def test_logout_private_pull_fails_public_pull_works(berth: Registry, dockerd: DockerDaemon) -> None:
    """After ``docker logout`` a private feed answers docker's "pull access denied"; a feed whose
    view privilege is granted to anonymous pulls without login."""
    private, public = berth.new_feed(), berth.new_feed()
    admin(
        berth,
        "POST",
        "/privileges",
        {
            "principal_kind": "anonymous",
            "principal": "",
            "privilege": "view",
            "feed": public,
            "effect": "grant",
        },
    )
    dockerd.login(berth.host, ADMIN_USER, ADMIN_PASSWORD)
    for feed in (private, public):
        dockerd.docker("tag", "berth-e2e/busybox:v1", f"{berth.host}/{feed}/app:v1")
        dockerd.push(f"{berth.host}/{feed}/app:v1")
    dockerd.docker("logout", berth.host)
    assert dockerd.credentials(berth.host) == {}
    dockerd.docker("image", "rm", f"{berth.host}/{private}/app:v1", f"{berth.host}/{public}/app:v1")

    denied = dockerd.docker("pull", f"{berth.host}/{private}/app:v1", check=False)
    assert denied.returncode != 0
    assert f"pull access denied for {berth.host}/{private}/app" in denied.stderr, denied.stderr
    reason = f"denied: authentication required to pull {private}/app: log in first"
    assert "may require 'docker login'" in denied.stderr and reason in denied.stderr, denied.stderr
    dockerd.docker("pull", f"{berth.host}/{public}/app:v1")


def test_push_without_add_privilege_is_refused(berth: Registry, dockerd: DockerDaemon) -> None:
    """A user who may only view a feed gets docker's "denied" on push, and no tag appears."""
    feed = berth.new_feed()
    user, password = new_user(berth, {feed: ["view"]})
    dockerd.login(berth.host, user, password)
    ref = f"{berth.host}/{feed}/app:v1"
    dockerd.docker("tag", "berth-e2e/busybox:v1", ref)
    refused = dockerd.docker("push", ref, check=False)
    reason = f"denied: insufficient privileges: {user} may not push {feed}/app"
    assert refused.returncode != 0 and reason in refused.stderr, refused.stderr
    r = httpx.get(
        f"http://{berth.host}/v2/{feed}/app/tags/list",
        timeout=30.0,
        auth=RegistryAuth(ADMIN_USER, ADMIN_PASSWORD),
    )
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN", r.text
    dockerd.docker("logout", berth.host)


def test_push_to_a_second_repository_mounts_its_layers(berth: Registry, dockerd: DockerDaemon) -> None:
    """docker pushes an image it pushed to ``FEED/first`` again as ``FEED/second``: every layer is
    mounted (``POST …/uploads/?mount=&from=`` answers 201, one ``blob.mounted`` each), only the
    small config is uploaded again. Counted from Berth's access log and its event store."""
    assert berth.server is not None and berth.database_url is not None
    feed = berth.new_feed()
    user, password = new_user(berth, {feed: ["add"]})
    dockerd.login(berth.host, user, password)
    layers = json.loads(dockerd.image("berth-e2e/busybox:v1", "{{json .RootFS.Layers}}"))
    for image in ("first", "second"):
        dockerd.docker("tag", "berth-e2e/busybox:v1", f"{berth.host}/{feed}/{image}:v1")
    dockerd.push(f"{berth.host}/{feed}/first:v1")
    log_start = berth.server.log_path.stat().st_size
    dockerd.push(f"{berth.host}/{feed}/second:v1")
    with berth.server.log_path.open("rb") as log:
        log.seek(log_start)
        lines = log.read().decode(errors="replace").splitlines()
    posts = [x for x in lines if "method=POST" in x and f"path=/v2/{feed}/second/blobs/uploads/" in x]
    assert len([x for x in posts if "status=201" in x]) == len(layers), "\n".join(posts)
    events = _run_sync(_events_of(berth.database_url, f"{feed}/second"))
    assert events.get("blob.mounted") == len(layers), events
    assert events.get("upload.completed") == 1, events  # the config only
    dockerd.docker("logout", berth.host)


async def _events_of(database_url: str, repository: str) -> dict[str, int]:
    """How many events of each type name ``repository`` in their payload."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM eventstore.events"
            " WHERE payload->>'repository' = $1 GROUP BY type",
            repository,
        )
    finally:
        await conn.close()
    return {r["type"]: r["n"] for r in rows}


def test_login_push_pull_over_tls(tmp_path: Path, berth: Registry) -> None:
    """``berth up --tls`` with its CA in ``/etc/docker/certs.d/HOST:PORT/ca.crt`` (as Berth's trust
    instructions say): docker login, push, pull and ``docker manifest inspect`` (without
    ``--insecure``) work over HTTPS. On loopback docker (dockerd and the CLI) treats
    127.0.0.0/8 as an insecure registry: it speaks TLS but does not verify the certificate, so
    this proves the HTTPS token flow, not CA verification (that needs a non-loopback address)."""
    if "tls" not in inspect.signature(berth_process).parameters:
        pytest.skip("berth up --tls is not in tests/support/berth_process.py yet")
    with (
        scratch_database() as database_url,
        scratch_stream() as stream,
        berth_process(
            tmp_path, database_url=database_url, nats_url=NATS_URL, stream=stream, tls=True
        ) as server,
        docker_daemon() as dockerd,
    ):
        feed = fresh_name("tls")
        server.create_feed(feed)
        certs = CERTS_D / server.host
        certs.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy(server.ca_file, certs / "ca.crt")
            dockerd.login(server.host, ADMIN_USER, ADMIN_PASSWORD)
            assert dockerd.credentials(server.host)["identitytoken"]
            context = scratch_context(tmp_path / "ctx", {"/bin/busybox": oci_layout.BUSYBOX})
            ref = f"{server.host}/{feed}/app"
            image_id = dockerd.build(context, f"{ref}:v1")
            digest = dockerd.push(f"{ref}:v1")
            assert digest in dockerd.docker("manifest", "inspect", "-v", f"{ref}:v1").stdout
            dockerd.clean()
            dockerd.docker("pull", f"{ref}@{digest}")
            assert dockerd.image(f"{ref}@{digest}", "{{.Id}}") == image_id
        finally:
            shutil.rmtree(certs, ignore_errors=True)
