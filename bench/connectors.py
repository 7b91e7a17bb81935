"""Connectors by hand: ``uv run python -m bench.connectors [--rounds 5] [--layers 4] [--layer-mib 16]``.

Measures with skopeo (a real client, ``skopeo copy docker://… dir:…``), per round on a fresh
image (random layers pushed to the upstream, so nothing is cached):

- **direct**: pull straight from the upstream (CNCF Distribution 2.8, filesystem storage);
- **first**: the first pull through a Berth feed's connector to that upstream (fetched,
  streamed while stored, verified, recorded);
- **cached**: the same pull again (served from Berth's store);
- **local**: the same image pushed to another Berth feed and pulled from there.

Reported: medians in seconds, and the ratios first/direct (the connector's overhead) and
cached/local (what serving cached content costs over pushed content). Berth runs as
``berth serve all --workers 2`` against the machine's PostgreSQL and NATS (``bench.servers``).
Prints one JSON line per round and a summary; writes nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import ADMIN_PASSWORD, FEED, berth
from berth.token_auth import RegistryAuth
from tests.support.upstream import distribution

MiB = 1 << 20
CACHE_FEED = "proxy"


def digest(data: bytes) -> str:
    """``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(url: str, repo: str, layers: int, layer_bytes: int) -> None:
    """Push a fresh image (a config and ``layers`` random layers) to ``url`` as ``repo:v1``."""
    blobs = [os.urandom(layer_bytes) for _ in range(layers)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    with httpx.Client(base_url=url, timeout=600) as c:
        for blob in (config, *blobs):
            start = c.post(f"/v2/{repo}/blobs/uploads/")
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            c.put(f"{location}{sep}digest={digest(blob)}", content=blob).raise_for_status()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(b),
                        "size": len(b)} for b in blobs],
        }  # fmt: skip
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        c.put(
            f"/v2/{repo}/manifests/v1", content=json.dumps(manifest).encode(), headers=headers
        ).raise_for_status()


def pull_seconds(source: str, workdir: Path) -> float:
    """Wall seconds of ``skopeo copy SOURCE dir:…`` (the folder is removed afterwards)."""
    target = Path(tempfile.mkdtemp(dir=workdir))
    started = time.monotonic()
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--quiet", source, f"dir:{target}"],
                   check=True, capture_output=True)  # fmt: skip
    elapsed = time.monotonic() - started
    subprocess.run(["rm", "-rf", str(target)], check=True)
    return elapsed


def copy(source: str, dest: str) -> None:
    """``skopeo copy`` between registries over plain HTTP."""
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--quiet",
                    "--preserve-digests", source, dest], check=True, capture_output=True)  # fmt: skip


def connect(berth_url: str, upstream_url: str) -> None:
    """Feed ``proxy`` (public) with a connector to the upstream."""
    auth = RegistryAuth("admin", ADMIN_PASSWORD)
    httpx.post(f"{berth_url}/api/feeds", json={"name": CACHE_FEED, "public": True}, auth=auth,
               timeout=30).raise_for_status()  # fmt: skip
    httpx.post(f"{berth_url}/api/feeds/{CACHE_FEED}/connectors", json={"url": upstream_url}, auth=auth,
               timeout=30).raise_for_status()  # fmt: skip


def one_round(n: int, up: str, berth_host: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Push a fresh image upstream and time the four pulls."""
    repo = f"app{n}"
    push_image(f"http://{up}", repo, args.layers, args.layer_mib * MiB)
    row = {"direct": pull_seconds(f"docker://{up}/{repo}:v1", workdir)}
    row["first"] = pull_seconds(f"docker://{berth_host}/{CACHE_FEED}/{repo}:v1", workdir)
    row["cached"] = pull_seconds(f"docker://{berth_host}/{CACHE_FEED}/{repo}:v1", workdir)
    copy(f"docker://{up}/{repo}:v1", f"docker://{berth_host}/{FEED}/{repo}:v1")
    row["local"] = pull_seconds(f"docker://{berth_host}/{FEED}/{repo}:v1", workdir)
    return row


def main() -> None:
    """Run the rounds and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-conn-") as tmp:
        workdir = Path(tmp)
        with distribution(workdir / "upstream") as up, berth(workdir / "berth", args.workers) as server:
            connect(server.url, up.url)
            rows = []
            for n in range(args.rounds):
                rows.append(one_round(n, up.host, server.host, args, workdir))
                print(json.dumps({"round": n, **{k: round(v, 3) for k, v in rows[-1].items()}}), flush=True)
    medians = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    size = args.layers * args.layer_mib
    print(json.dumps({
        "image_mib": size, "layers": args.layers, "rounds": args.rounds,
        **{f"{k}_s": round(v, 3) for k, v in medians.items()},
        "first_over_direct": round(medians["first"] / medians["direct"], 2),
        "cached_over_local": round(medians["cached"] / medians["local"], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
