"""Request-rate cases: manifest GET/HEAD by tag (wrk), tag listing and ``_catalog`` over 10k
entries (wrk, one connection), and ``skopeo copy`` of a 50-layer image (wall time)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from bench.client import MANIFEST, Registry, mount, push_bytes, put_manifest
from bench.common import Context, Row
from bench.loadgen import hey, wrk
from tests.e2e.oci_layout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    canonical_json,
    init_layout,
    tag_descriptor,
    write_blob,
)

MANIFEST_REPO = "bench/m"
PUT_REPO = "bench/mput"
ACCEPT = ", ".join(
    [
        MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
CONCURRENCY = (1, 16, 64)
PUT_CONCURRENCY = 16
POPULATE_THREADS = 16
TOKEN_BATCH = 20  # repositories per Berth token while populating row 6


def image_manifest(config: bytes, layers: list[bytes]) -> bytes:
    """An OCI image manifest over a config and gzip layers given as bytes."""

    def desc(data: bytes, media_type: str) -> dict[str, Any]:
        return {
            "mediaType": media_type,
            "size": len(data),
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        }

    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": desc(config, OCI_CONFIG),
            "layers": [desc(x, OCI_LAYER_GZIP) for x in layers],
        }
    )


def push_small_image(reg: Registry, repo: str, tag: str) -> bytes:
    """Push a config + one small layer + manifest tagged ``tag``; return the manifest bytes."""
    layer = gzip.compress(os.urandom(1024), mtime=0)
    config = canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    conn = reg.connect()
    try:
        push_bytes(reg, conn, repo, config)
        push_bytes(reg, conn, repo, layer)
        manifest = image_manifest(config, [layer])
        put_manifest(reg, conn, repo, tag, manifest)
    finally:
        conn.close()
    return manifest


# (row key suffix, label, unit, which way is better) of a load point's three rows
_RPS_P50_P99: tuple[tuple[str, str, str, Literal["higher", "lower"]], ...] = (
    ("rps", "requests/s", "req/s", "higher"),
    ("p50", "p50", "ms", "lower"),
    ("p99", "p99", "ms", "lower"),
)


class Manifests:
    """Row 3: manifest GET and HEAD by tag at 1, 16 and 64 connections."""

    name = "manifests"
    rows = [
        Row(f"{m.lower()}_c{c}_{k}", f"manifest {m} by tag, {c} conn. ({tool}), {label}", unit, better)
        for m, tool in (("GET", "wrk"), ("HEAD", "hey"))
        for c in CONCURRENCY
        for k, label, unit, better in _RPS_P50_P99
    ]
    rows += [
        Row(
            f"put_c{PUT_CONCURRENCY}_{k}",
            f"manifest PUT under a new tag, {PUT_CONCURRENCY} conn. (wrk), {label}",
            unit,
            better,
        )
        for k, label, unit, better in _RPS_P50_P99[:2]
    ]

    def setup(self, reg: Registry, ctx: Context) -> None:
        push_small_image(reg, MANIFEST_REPO, "latest")
        manifest = push_small_image(reg, PUT_REPO, "latest")  # its own repository: GETs unaffected
        body = ctx.workdir / f"manifest-{reg.name}.json"
        body.write_bytes(manifest)
        ctx.shared[f"manifest_body_{reg.name}"] = body

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        url = f"http://{reg.host}/v2/{MANIFEST_REPO}/manifests/latest"
        out: dict[str, float] = {}
        for method in ("GET", "HEAD"):
            for c in CONCURRENCY:
                headers = {"Accept": ACCEPT, **reg.tokens.repo(MANIFEST_REPO, "pull")}
                load = wrk if method == "GET" else hey
                r = load(url, method=method, connections=c, seconds=ctx.wrk_seconds, headers=headers)
                key = f"{method.lower()}_c{c}"
                out.update(
                    {
                        f"{key}_rps": r["rps"],
                        f"{key}_p50": r["p50_ms"],
                        f"{key}_p99": r["p99_ms"],
                        f"{key}_wrk_cpu": r["wrk_cpu"],
                    }
                )
        out.update(self._put(reg, ctx, round_no))
        return out

    def _put(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        """Manifest PUT throughput: the same small manifest under a new tag per request."""
        headers = {"Content-Type": MANIFEST, **reg.tokens.repo(PUT_REPO, "pull,push")}
        url = f"http://{reg.host}/v2/{PUT_REPO}/manifests/put-r{round_no}-"
        r = wrk(
            url,
            method="PUT",
            connections=PUT_CONCURRENCY,
            seconds=ctx.wrk_seconds,
            headers=headers,
            body_file=ctx.shared[f"manifest_body_{reg.name}"],
        )
        key = f"put_c{PUT_CONCURRENCY}"
        return {f"{key}_rps": r["rps"], f"{key}_p50": r["p50_ms"], f"{key}_wrk_cpu": r["wrk_cpu"]}


class Listing:
    """Row 6: tags/list of a repository with N tags; ``_catalog`` over N repositories (first page
    and a deep page via ``last=``), N = 10,000, measured with wrk on one connection."""

    name = "listing"
    rows = [
        Row(f"{k}_{m}", f"{label}, {mlabel}", unit, better)
        for k, label in (
            ("tags", "tags/list of 10k tags (one response)"),
            ("catalog_first", "_catalog?n=100, first page of 10k repos"),
            ("catalog_deep", "_catalog?n=100&last=, page at 90% of 10k repos"),
        )
        for m, mlabel, unit, better in _RPS_P50_P99[:2]
    ]

    def setup(self, reg: Registry, ctx: Context) -> None:
        manifest = push_small_image(reg, "bench/base", "v1")
        self._tags(reg, manifest, ctx.listing_count)
        self._repositories(reg, manifest, ctx.listing_count)

    def _tags(self, reg: Registry, manifest: bytes, count: int) -> None:
        """Mount bench/base's blobs into bench/tags once, then PUT the manifest under N tags."""
        repo, data = "bench/tags", json.loads(manifest)
        conn = reg.connect()
        try:
            for d in [data["config"], *data["layers"]]:
                mount(
                    reg,
                    conn,
                    repo,
                    d["digest"],
                    "bench/base",
                    reg.tokens.headers(f"repository:{repo}:pull,push", "repository:bench/base:pull"),
                )
        finally:
            conn.close()
        conn_for = _thread_connections(reg)
        with ThreadPoolExecutor(POPULATE_THREADS) as pool:
            list(
                pool.map(lambda i: put_manifest(reg, conn_for(), repo, f"t-{i:05d}", manifest), range(count))
            )

    def _repositories(self, reg: Registry, manifest: bytes, count: int) -> None:
        data = json.loads(manifest)
        digests = [data["config"]["digest"], *(x["digest"] for x in data["layers"])]
        conn_for = _thread_connections(reg)

        def batch(start: int) -> None:
            names = [f"bench/r-{i:05d}" for i in range(start, min(start + TOKEN_BATCH, count))]
            headers = reg.tokens.headers(
                *(f"repository:{n}:pull,push" for n in names), "repository:bench/base:pull"
            )
            conn = conn_for()
            for name in names:
                for digest in digests:
                    mount(reg, conn, name, digest, "bench/base", headers)
                put_manifest(reg, conn, name, "v1", manifest, headers)

        with ThreadPoolExecutor(POPULATE_THREADS) as pool:
            list(pool.map(batch, range(0, count, TOKEN_BATCH)))

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        deep = f"bench/r-{ctx.listing_count * 9 // 10:05d}"
        targets = {
            "tags": ("/v2/bench/tags/tags/list", reg.tokens.repo("bench/tags", "pull")),
            "catalog_first": ("/v2/_catalog?n=100", reg.tokens.headers("registry:catalog:*")),
            "catalog_deep": (f"/v2/_catalog?n=100&last={deep}", reg.tokens.headers("registry:catalog:*")),
        }
        out: dict[str, float] = {}
        for key, (path, headers) in targets.items():
            r = wrk(f"http://{reg.host}{path}", connections=1, seconds=ctx.wrk_seconds, headers=headers)
            out.update({f"{key}_rps": r["rps"], f"{key}_p50": r["p50_ms"], f"{key}_wrk_cpu": r["wrk_cpu"]})
        return out


def _thread_connections(reg: Registry) -> Callable[[], http.client.HTTPConnection]:
    """A factory of one keep-alive connection per thread."""
    local = threading.local()

    def get() -> http.client.HTTPConnection:
        if not hasattr(local, "conn"):
            local.conn = reg.connect()
        return local.conn  # type: ignore[no-any-return]

    return get


LAYERS = 50
REPEAT = 5  # skopeo pushes (and pulls) per round; the row takes their median


def build_layout(path: Path, seed: bytes) -> None:
    """An OCI layout at ``path`` with one image of 50 small, unique gzip layers, tagged ``v1``."""
    init_layout(path)
    layers, diff_ids = [], []
    for i in range(LAYERS):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            content = seed + i.to_bytes(4, "big") + os.urandom(8 * 1024)
            info = tarfile.TarInfo(f"layer{i:02d}/data.bin")
            info.size, info.mtime = len(content), 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
        diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
        layers.append(write_blob(path, gzip.compress(raw.getvalue(), mtime=0), OCI_LAYER_GZIP))
    config = write_blob(
        path,
        canonical_json(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ),
        OCI_CONFIG,
    )
    manifest = write_blob(
        path,
        canonical_json({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers}),
        MANIFEST,
    )
    tag_descriptor(path, "v1", manifest)


class Skopeo:
    """Row 4: ``skopeo copy`` of a fresh 50-layer image into a new repository, then back out."""

    name = "skopeo"
    rows = [
        Row("skopeo_push", "skopeo copy push, 50 layers (wall, median of 5)", "s", "lower"),
        Row("skopeo_pull", "skopeo copy pull, 50 layers (wall, median of 5)", "s", "lower"),
    ]

    def setup(self, reg: Registry, ctx: Context) -> None:
        auth = ctx.workdir / "skopeo-auth.json"
        auth.write_text('{"auths": {}}')  # anonymous: Berth's token flow without credentials

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        """Median of ``REPEAT`` pushes (each a fresh image into a fresh repository) and pulls:
        one skopeo run lasts about a second, so a single one per round is mostly noise."""
        pushes, pulls = [], []
        for i in range(REPEAT):
            scratch = ctx.workdir / "scratch" / f"skopeo-{reg.name}-{round_no}-{i}"
            layout, out = scratch / "layout", scratch / "pulled"
            build_layout(layout, f"{reg.name}-{round_no}-{i}-{time.time_ns()}".encode())
            ref = f"docker://{reg.host}/bench/sk-{round_no}-{i}:v1"
            env = {**os.environ, "REGISTRY_AUTH_FILE": str(ctx.workdir / "skopeo-auth.json")}
            pushes.append(
                _timed(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:v1", ref], env)
            )
            pulls.append(
                _timed(["skopeo", "copy", "-q", "--src-tls-verify=false", ref, f"oci:{out}:v1"], env)
            )
            shutil.rmtree(scratch, ignore_errors=True)
        return {"skopeo_push": statistics.median(pushes), "skopeo_pull": statistics.median(pulls)}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-1000:]}")
    return time.monotonic() - started
