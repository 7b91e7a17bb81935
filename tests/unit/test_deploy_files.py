"""The path routing agrees in every form (docs/DESIGN.md §1) and the deploy files hang together.

One table, ``berth_common.http.routing.service_for_path``; checked here against the all-in-one
app's routers, ``deploy/nginx.conf`` (compose's proxy, matched as nginx matches locations) and
``deploy/k8s/<topology>/ingress.yaml`` (matched as ingress-nginx with ``use-regex`` does: anchored,
case-insensitive, longest path first). Reads files only; no network.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import BaseRoute, Match

from berth.allinone import create_app
from berth_common.http.routing import (
    AUTH_PATH_REGEX,
    BLOB_PATH_REGEX,
    SERVICES,
    UI_PATH_REGEX,
    Service,
    service_for_path,
)
from berth_common.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DIGEST = "sha256:" + "ab" * 32
UPLOAD = "3f1d2c4e-0000-4000-8000-000000000001"

# (method, path, service): every kind of request a registry client or an admin sends.
SAMPLES: list[tuple[str, str, Service]] = [
    ("GET", "/v2/", "api"),
    ("GET", "/v2/_catalog", "api"),
    ("GET", "/v2/dmc/ubuntu/manifests/trusty", "api"),
    ("PUT", f"/v2/dmc/ubuntu/manifests/{DIGEST}", "api"),
    ("DELETE", f"/v2/dmc/team/app/manifests/{DIGEST}", "api"),
    ("GET", "/v2/dmc/ubuntu/tags/list", "api"),
    ("GET", f"/v2/dmc/ubuntu/referrers/{DIGEST}", "api"),
    ("GET", "/v2/dmc/blobs/manifests/v1", "api"),  # a repository named dmc/blobs
    ("GET", "/v2/dmc/blobs/tags/list", "api"),
    ("GET", f"/v2/dmc/ubuntu/blobs/{DIGEST}", "blob"),
    ("HEAD", f"/v2/dmc/team/app/blobs/{DIGEST}", "blob"),
    ("DELETE", f"/v2/dmc/ubuntu/blobs/{DIGEST}", "blob"),
    ("GET", f"/v2/dmc/blobs/blobs/{DIGEST}", "blob"),
    ("POST", "/v2/dmc/ubuntu/blobs/uploads/", "blob"),
    ("POST", "/v2/dmc/ubuntu/blobs/uploads", "blob"),
    ("PATCH", f"/v2/dmc/ubuntu/blobs/uploads/{UPLOAD}", "blob"),
    ("PUT", f"/v2/dmc/ubuntu/blobs/uploads/{UPLOAD}", "blob"),
    ("GET", f"/v2/dmc/ubuntu/blobs/uploads/{UPLOAD}", "blob"),
    ("POST", "/api/feeds", "api"),
    ("GET", "/api/feeds/dmc", "api"),
    ("GET", "/token", "auth"),
    ("POST", "/token", "auth"),
    ("GET", "/auth/jwks.json", "auth"),
    ("POST", "/api/users", "auth"),
    ("PUT", "/api/users/alice/password", "auth"),
    ("POST", "/api/groups/devs/members", "auth"),
    ("GET", "/api/privileges", "auth"),
    ("DELETE", "/api/keys/k1", "auth"),
    ("POST", "/api/signing-keys/rotate", "auth"),
    ("GET", "/api/refresh-tokens", "auth"),
    ("DELETE", "/api/refresh-tokens/t-1", "auth"),
    ("POST", "/api/gc/jobs", "gc"),
    ("POST", "/api/gc/runs", "gc"),
    ("GET", "/api/gc/runs/0b8e3c52-7a43-4c57-9d8e-16e0bb1f2a8d", "gc"),
    ("GET", "/api/feeds/dmc/repositories", "api"),
    ("GET", "/api/repositories/dmc/ubuntu/tags", "api"),
    ("GET", "/api/repositories/dmc/ui/history", "api"),  # an image named "ui" is the api's
    ("POST", "/auth/revoke", "auth"),
    ("GET", "/", "ui"),
    ("GET", "/ui", "ui"),
    ("GET", "/ui/feeds", "ui"),
    ("POST", "/ui/login", "ui"),
    ("GET", "/ui/repositories/dmc/ubuntu/-/manifests/" + DIGEST, "ui"),
    ("GET", "/ui/static/berth.css", "ui"),
    ("GET", "/v2/ui/app/manifests/v1", "api"),  # a feed named "ui" is the registry's
]
IDS = [f"{m} {p}" for m, p, _ in SAMPLES]


@pytest.mark.parametrize(("method", "path", "service"), SAMPLES, ids=IDS)
def test_service_for_path(method: str, path: str, service: Service) -> None:
    assert service_for_path(path) == service


def test_ui_owns_only_its_prefix_and_the_root() -> None:
    assert [service_for_path(p) for p in ("/uikit", "/api/docs", "/api/docs/static/x.js")] == ["api"] * 3
    assert [service_for_path(p) for p in ("/", "/ui", "/ui/", "/ui/x")] == ["ui"] * 4


@functools.cache
def allinone_routes() -> list[Any]:
    """The all-in-one app's routes (built once; its lifespan never runs, so no I/O)."""
    return _flat_routes(create_app(Settings(database_url="postgresql://unused/db")).router.routes)


@pytest.mark.parametrize(("method", "path", "service"), SAMPLES, ids=IDS)
def test_allinone_routers_agree(method: str, path: str, service: Service) -> None:
    """The route the all-in-one app picks belongs to the service the table names (if any)."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    endpoint = next((r.endpoint for r in allinone_routes() if r.matches(scope)[0] == Match.FULL), None)
    if endpoint is None:  # an unknown path under gc's prefix matches no route
        assert service == "gc", f"no route serves {method} {path}"
        return
    assert endpoint.__module__.split(".")[0] == f"berth_{service}"


def _flat_routes(routes: list[BaseRoute]) -> list[Any]:
    """Routes in matching order, with FastAPI's included routers opened up (none has a prefix)."""
    flat: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat.extend(_flat_routes(inner.routes) if inner is not None else [route])
    return flat


# --- compose: nginx -------------------------------------------------------------------------

_LOCATION = re.compile(r"location\s+(=|~\*|~|\^~)?\s*(\S+)\s*\{\s*proxy_pass\s+http://(\w+);\s*\}")
_UPSTREAM = re.compile(r"upstream\s+(\w+)\s*\{\s*server\s+([\w.-]+):(\d+);")


@functools.cache
def nginx_locations() -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """``([(modifier, pattern, upstream)], {upstream: compose service})`` from deploy/nginx.conf."""
    text = (DEPLOY / "nginx.conf").read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    locations = [(m or "", p, u) for m, p, u in _LOCATION.findall(text)]
    upstreams = {name: host for name, host, _ in _UPSTREAM.findall(text)}
    return locations, upstreams


def nginx_pick(locations: list[tuple[str, str, str]], path: str) -> str | None:
    """The upstream nginx chooses: exact, else ``^~`` longest prefix, else first regex, else prefix."""
    for mod, pattern, upstream in locations:
        if mod == "=" and path == pattern:
            return upstream
    prefixes = [(p, m, u) for m, p, u in locations if m in ("", "^~") and path.startswith(p)]
    longest = max(prefixes, key=lambda x: len(x[0]), default=None)
    if longest and longest[1] == "^~":
        return longest[2]
    for mod, pattern, upstream in locations:
        flags = re.IGNORECASE if mod == "~*" else 0
        if mod in ("~", "~*") and re.search(pattern, path, flags):
            return upstream
    return longest[2] if longest else None


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


@pytest.mark.parametrize(("method", "path", "service"), SAMPLES, ids=IDS)
def test_nginx_routes_agree(method: str, path: str, service: Service) -> None:
    locations, upstreams = nginx_locations()
    upstream = nginx_pick(locations, path)
    assert upstream is not None, f"nginx serves no location for {path}"
    assert upstreams[upstream] == service


def test_nginx_spells_the_regexes() -> None:
    locations, _ = nginx_locations()
    assert ("~", BLOB_PATH_REGEX, "berth_blob") in locations
    assert ("~", AUTH_PATH_REGEX, "berth_auth") in locations


def test_compose_runs_each_service_behind_the_proxy() -> None:
    services = compose()["services"]
    _, upstreams = nginx_locations()
    assert set(upstreams.values()) == set(SERVICES)
    for name in SERVICES:
        svc = services[name]
        assert svc["command"][:2] == ["serve", name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        if name == "ui":  # stateless: only the API's URL (the proxy), no database
            assert svc["environment"]["BERTH_UI__API_URL"] == "http://proxy"
            assert "BERTH_DATABASE_URL" not in svc["environment"]
        else:
            assert {"BERTH_DATABASE_URL", "BERTH_NATS_URL"} <= set(svc["environment"])
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
    assert (DEPLOY.parent / services["api"]["build"]["context"].removeprefix("../")).is_dir()
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    assert "--jetstream" in services["nats"]["command"]
    assert {"postgres", "nats", "minio"} <= set(services)


# --- Kubernetes: one directory of plain manifests per topology -------------------------------

TOPOLOGIES = ("single-node", "scaled")


@functools.cache
def k8s_documents(topology: str) -> list[dict[str, Any]]:
    return [
        d
        for f in sorted((DEPLOY / "k8s" / topology).glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]


def k8s_kind(kind: str, topology: str = "scaled") -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents(topology) if d["kind"] == kind}


def deployment_service(k8s_service: str, topology: str) -> str:
    """The Berth service behind Kubernetes Service ``k8s_service`` (from its pods' args)."""
    selector = k8s_kind("Service", topology)[k8s_service]["spec"]["selector"]
    for deployment in k8s_kind("Deployment", topology).values():
        template = deployment["spec"]["template"]
        if selector.items() <= template["metadata"]["labels"].items():
            args: list[str] = template["spec"]["containers"][0]["args"]
            return args[1]
    raise AssertionError(f"no Deployment behind Service {k8s_service}")


def ingress_pick(path: str, topology: str) -> str | None:
    """The backend Service ingress-nginx picks: longest path first, anchored, case-insensitive."""
    rules = k8s_kind("Ingress", topology)["berth"]["spec"]["rules"]
    paths = [p for rule in rules for p in rule["http"]["paths"]]
    for p in sorted(paths, key=lambda p: len(p["path"]), reverse=True):
        if re.match(p["path"], path, re.IGNORECASE):
            name: str = p["backend"]["service"]["name"]
            return name
    return None


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize(("method", "path", "service"), SAMPLES, ids=IDS)
def test_ingress_routes_agree(method: str, path: str, service: Service, topology: str) -> None:
    backend = ingress_pick(path, topology)
    assert backend is not None, f"the Ingress routes nothing for {path}"
    assert deployment_service(backend, topology) == service


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_ingress_is_regex_and_spells_the_regexes(topology: str) -> None:
    ingress = k8s_kind("Ingress", topology)["berth"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/use-regex"] == "true"
    paths = {"^" + p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert {BLOB_PATH_REGEX, AUTH_PATH_REGEX, UI_PATH_REGEX} <= paths


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_k8s_deployments_serve_one_service_each_with_probes(topology: str) -> None:
    deployments = k8s_kind("Deployment", topology)
    assert {f"berth-{s}" for s in SERVICES} == set(deployments)
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["serve", name.removeprefix("berth-")]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert (
            deployment["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        service = k8s_kind("Service", topology)[name]["spec"]["ports"][0]
        assert service["targetPort"] == container["ports"][0]["name"]


# --- the image ------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """deploy/Dockerfile's instructions, one list per stage (continuation lines joined)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_image_is_multi_stage_non_root_without_build_tools() -> None:
    build, runtime = dockerfile_stages()
    assert any("uv sync --frozen --no-dev" in line for line in build)
    assert runtime[0].startswith("FROM python:") and runtime[0].endswith("AS runtime")
    assert not any("uv" in line.split() or "apt-get" in line for line in runtime)  # no tools copied in
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies == ["COPY --from=build /opt/berth /opt/berth"]
    user = next(line for line in runtime if line.startswith("USER ")).split()[1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) >= 10000
    assert runtime[-2:] == [
        'ENTRYPOINT ["berth"]',
        'CMD ["serve", "all", "--host", "0.0.0.0", "--port", "5000"]',
    ]
