"""deploy/compose.yaml: valid for Compose v2, the scaled topology, and it runs (as processes).

This machine runs no containers, so ``test_compose_topology_runs_as_processes`` runs the same
commands, ports and environment the compose file declares as processes
(``tests/support/compose_topology.py`` says what is translated): ``berth migrate`` first, two
api and two blob replicas, auth, gc and ui, and nginx with deploy/nginx.conf in front; then
skopeo pushes an image through it and pulls it back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.token_auth import RegistryAuth
from tests.e2e import oci_layout
from tests.e2e.clients import docker_ref, skopeo_copy
from tests.e2e.conftest import scratch_database, scratch_stream
from tests.support.berth_process import registry_credentials
from tests.support.compose_topology import (
    BERTH,
    DEPLOY,
    Backends,
    command,
    compose_binary,
    environment,
    nginx,
    nginx_config,
    resolved,
    secret_files,
    storage_supported,
)
from tests.support.databases import NATS_URL
from tests.support.net import free_port, wait_http
from tests.support.serve_process import REPO_ROOT, ServeProcess, stop, wait_ready
from tests.support.stores import s3_server

ADMIN_PASSWORD = "compose-admin"


def test_compose_file_validates() -> None:
    result = subprocess.run(
        [str(compose_binary()), "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_compose_declares_the_scaled_topology() -> None:
    services = resolved()["services"]
    assert {"postgres", "nats", "minio", "proxy", *BERTH} <= set(services)
    assert services["api"]["deploy"]["replicas"] == services["blob"]["deploy"]["replicas"] == 2
    assert "deploy" not in services["gc"] or services["gc"]["deploy"].get("replicas", 1) == 1
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("api", "blob", "auth", "gc"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["BERTH_MIGRATE_ON_START"] == "false"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
    for name in ("blob", "gc"):
        assert services[name]["environment"]["BERTH_STORAGE__KIND"] == "s3"
        assert services[name]["environment"]["BERTH_STORAGE__ENDPOINT"] == "http://minio:9000"


def test_compose_stores_blobs_in_minio_with_the_keys_as_secrets() -> None:
    """blob and gc (the services that touch the store) read the S3 keys from the same secret
    files MinIO takes its root user from; the bucket they use is the one ``minio-bucket`` makes;
    presigned URLs point at MinIO's published port; no service carries an S3 key in its
    environment."""
    compose = resolved()
    services = compose["services"]
    minio = services["minio"]
    minio_secrets = {s["source"] for s in minio["secrets"]}
    assert minio["environment"]["MINIO_ROOT_USER_FILE"] == "/run/secrets/s3-access-key"
    assert minio["environment"]["MINIO_ROOT_PASSWORD_FILE"] == "/run/secrets/s3-secret-key"
    for name in ("blob", "gc"):
        env, granted = services[name]["environment"], {s["source"] for s in services[name]["secrets"]}
        for option, secret in (("ACCESS_KEY_FILE", "s3-access-key"), ("SECRET_KEY_FILE", "s3-secret-key")):
            assert env[f"BERTH_STORAGE__{option}"] == f"/run/secrets/{secret}", name
            assert secret in granted and secret in minio_secrets, name
        assert f"local/{env['BERTH_STORAGE__BUCKET']}" in " ".join(services["minio-bucket"]["command"])
        public = env["BERTH_STORAGE__PUBLIC_ENDPOINT"].rsplit(":", 1)[1]
        assert public in [str(p["published"]) for p in minio["ports"]], name
    for name, service in services.items():
        for key in service.get("environment") or {}:
            assert not key.endswith(("ACCESS_KEY", "SECRET_KEY", "ROOT_USER", "ROOT_PASSWORD")), (name, key)
    assert set(compose["secrets"]) >= {"s3-access-key", "s3-secret-key"}


@contextlib.contextmanager
def process(
    name: str, cmd: list[str], env: dict[str, str], workdir: Path, url: str
) -> Iterator[ServeProcess]:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = ServeProcess(name, url, proc, log_path)
    try:
        yield served
    finally:
        stop([served])


def _s3_secret_files(workdir: Path, access_key: str, secret_key: str) -> dict[str, Path]:
    """The compose secrets of the S3 credentials, holding the S3 server's own keys."""
    files = {}
    for name, value in (("s3-access-key", access_key), ("s3-secret-key", secret_key)):
        path = workdir / name
        path.write_text(value + "\n")
        files[f"/run/secrets/{name}"] = path
    return files


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "OTEL_"))}


def _migrate(compose: dict[str, Any], backends: Backends, secrets: dict[str, Path]) -> None:
    spec = compose["services"]["migrate"]
    env = _base_env() | environment(spec["environment"], backends, secrets)
    done = subprocess.run(command(spec["command"], 0), cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the schema is up to date" in done.stdout


@pytest.mark.e2e
def test_compose_topology_runs_as_processes(tmp_path: Path) -> None:
    compose = resolved()
    secrets = {k: DEPLOY / v if not v.is_absolute() else v for k, v in secret_files(compose).items()}
    proxy_port = free_port()
    with scratch_database() as dsn, scratch_stream() as stream, contextlib.ExitStack() as stack:
        backends = Backends(dsn, NATS_URL, stream, tmp_path, urls={"proxy": f"http://127.0.0.1:{proxy_port}"})
        blob_env = compose["services"]["blob"]["environment"]
        if storage_supported(blob_env):
            s3 = stack.enter_context(s3_server())  # moto here; MinIO where containers run
            s3.minio().make_bucket(blob_env["BERTH_STORAGE__BUCKET"])
            backends.s3_endpoint = s3.endpoint
            secrets |= _s3_secret_files(tmp_path, s3.access_key, s3.secret_key)
        else:
            print("Berth's settings take no S3 store: blob and gc share a filesystem store")
        _migrate(compose, backends, secrets)
        ports: dict[str, list[int]] = {}
        served: list[ServeProcess] = []
        for name in BERTH[1:]:
            spec = compose["services"][name]
            env = _base_env() | environment(spec["environment"], backends, secrets)
            env["BERTH_ADMIN_PASSWORD"] = ADMIN_PASSWORD
            for replica in range(int((spec.get("deploy") or {}).get("replicas") or 1)):
                port = free_port()
                ports.setdefault(name, []).append(port)
                url = f"http://127.0.0.1:{port}"
                served.append(
                    stack.enter_context(
                        process(f"{name}-{replica}", command(spec["command"], port), env, tmp_path, url)
                    )
                )
        try:
            wait_ready(served, "/readyz")
        except RuntimeError:
            print("\n".join(s.log() for s in served))
            raise
        config = nginx_config(ports, proxy_port, tmp_path)
        stack.enter_context(
            process("proxy", [nginx(), "-c", str(config)], _base_env(), tmp_path, backends.urls["proxy"])
        )
        wait_http(f"{backends.urls['proxy']}/v2/", timeout=30)
        _push_and_pull(tmp_path, backends.urls["proxy"])
        _metrics_need_the_compose_secret(served, secrets["/run/secrets/metrics-token"].read_text().strip())
        logs = {s.name: s.log_path.read_text() for s in served}
    assert all("/v2/" in logs[f"blob-{i}"] for i in range(2)), "a blob replica served no request"


def _push_and_pull(workdir: Path, proxy: str) -> None:
    layout = workdir / "oci"
    oci_layout.build_image(layout, "v1")
    pushed = oci_layout.resolve_tag(layout, "v1")["digest"]
    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    assert (
        httpx.post(f"{proxy}/api/feeds", json={"name": "compose"}, auth=auth, timeout=30).status_code == 201
    )
    host = proxy.removeprefix("http://")
    registry_credentials(host, password=ADMIN_PASSWORD)
    for tag in ("v1", "v2"):  # several uploads, so both blob replicas serve some
        skopeo_copy(f"oci:{layout}:v1", docker_ref(host, "compose/busybox", tag))
    skopeo_copy(docker_ref(host, "compose/busybox", "v2"), f"oci:{workdir / 'back'}:v2")
    assert oci_layout.resolve_tag(workdir / "back", "v2")["digest"] == pushed


def _metrics_need_the_compose_secret(served: list[ServeProcess], token: str) -> None:
    blob = next(s for s in served if s.name.startswith("blob"))
    assert httpx.get(f"{blob.url}/metrics").status_code == 401
    ok = httpx.get(f"{blob.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and "berth_upload_sessions_open" in ok.text
