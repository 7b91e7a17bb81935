"""The soak's workload (``bench/soak.py``): pushers sharing layers, pullers verifying every byte.

Pushers push images made of layers drawn from a shared pool plus one layer of their own, the
way CI systems do: HEAD each blob first and upload only what is missing (monolithic or in
chunks), then PUT the manifest and move a tag. They retry what a real client retries (5xx,
429, a blob the registry lost between HEAD and manifest PUT: re-upload). Pullers fetch a random
manifest that was pushed successfully and every blob it references, and check each against its
digest. Only two outcomes count as failures of the registry: bytes that do not match their
digest (``verification_failures``) and a blob of an acknowledged manifest that is gone
(``missing_blobs``); errors while a process is being killed are counted, not judged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Tally:
    """What the workload saw."""

    pushes: int = 0
    push_retries: int = 0
    pulls: int = 0
    blobs_verified: int = 0
    transient_errors: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    verification_failures: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    pushed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # repo, manifest, blobs


class Tokens:
    """Anonymous bearer tokens by scope, refreshed before they expire (Docker token flow)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client, self._cache = client, dict[str, tuple[float, str]]()

    async def headers(self, repo: str, actions: str) -> dict[str, str]:
        """``Authorization`` for ``repository:<repo>:<actions>``."""
        scope = f"repository:{repo}:{actions}"
        hit = self._cache.get(scope)
        if hit is None or hit[0] < time.monotonic():
            r = await self.client.get("/token", params={"service": "berth", "scope": scope})
            r.raise_for_status()
            body = r.json()
            hit = (time.monotonic() + float(body.get("expires_in", 300)) - 60, body["token"])
            self._cache[scope] = hit
        return {"Authorization": f"Bearer {hit[1]}"}


class Workload:
    """``pushers`` and ``pullers`` against ``url`` (feed ``feed``) until ``stop`` is set."""

    def __init__(self, url: str, feed: str, pushers: int, pullers: int, shared_layers: int = 24) -> None:
        self.url, self.feed, self.n_push, self.n_pull = url, feed, pushers, pullers
        rng = random.Random(7)
        self.shared = [rng.randbytes(rng.randint(16 << 10, 512 << 10)) for _ in range(shared_layers)]
        self.tally, self.stop = Tally(), asyncio.Event()

    async def run(self) -> Tally:
        """Run every pusher and puller until ``stop``; return the tally."""
        limits = httpx.Limits(max_connections=self.n_push + self.n_pull + 8)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as client:
            tokens = Tokens(client)
            tasks = [self._pusher(client, tokens, i) for i in range(self.n_push)]
            tasks += [self._puller(client, tokens, i) for i in range(self.n_pull)]
            await asyncio.gather(*tasks)
        return self.tally

    async def _pusher(self, client: httpx.AsyncClient, tokens: Tokens, n: int) -> None:
        rng, repo, i = random.Random(n), f"{self.feed}/app{n % 5}", 0
        while not self.stop.is_set():
            layers = [*rng.sample(self.shared, 3), os.urandom(rng.randint(1 << 10, 256 << 10))]
            config = json.dumps({"architecture": "amd64", "os": "linux", "pusher": n, "i": i}).encode()
            tag = f"p{n}-{i}"
            if await self._push_image(client, tokens, repo, tag, config, layers, rng):
                self.tally.pushes += 1
            i += 1

    async def _push_image(
        self, client: httpx.AsyncClient, tokens: Tokens, repo: str, tag: str, config: bytes,
        layers: list[bytes], rng: random.Random,
    ) -> bool:  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest_of(x),
                        "size": len(x)} for x in layers],
        }).encode()  # fmt: skip
        for attempt in range(20):
            if self.stop.is_set():
                return False
            try:
                headers = await tokens.headers(repo, "pull,push")
                for blob in [config, *layers]:
                    await self._ensure_blob(client, headers, repo, blob, rng)
                r = await client.put(
                    f"/v2/{repo}/manifests/{tag}", content=manifest,
                    headers={**headers, "Content-Type": OCI_MANIFEST},
                )  # fmt: skip
                if r.status_code == 201:
                    blobs = [digest_of(b) for b in [config, *layers]]
                    self.tally.pushed.append((repo, r.headers["docker-content-digest"], blobs))
                    return True
                if r.status_code not in RETRYABLE and r.status_code not in (400, 404):
                    raise RuntimeError(f"manifest PUT {r.status_code}: {r.text[:300]}")
                self._reason(f"manifest PUT {r.status_code} {_code(r)}")
            except _Retry as exc:
                self._reason(str(exc))
            except httpx.HTTPError as exc:
                self._reason(type(exc).__name__)
            self.tally.push_retries += 1
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        return False

    async def _ensure_blob(
        self, client: httpx.AsyncClient, headers: dict[str, str], repo: str, blob: bytes, rng: random.Random
    ) -> None:
        digest = digest_of(blob)
        head = await client.head(f"/v2/{repo}/blobs/{digest}", headers=headers)
        if head.status_code == 200:
            return
        if head.status_code != 404:
            raise _Retry(f"blob HEAD {head.status_code}")
        start = await client.post(f"/v2/{repo}/blobs/uploads/", headers=headers)
        if start.status_code != 202:
            raise _Retry(f"upload POST {start.status_code} {_code(start)}")
        location = start.headers["location"]
        if rng.random() < 0.5 and len(blob) > 64 << 10:  # chunked: two PATCHes, then PUT
            half = len(blob) // 2
            for lo, hi in ((0, half), (half, len(blob))):
                r = await client.patch(
                    location, content=blob[lo:hi], headers={**headers, "Content-Range": f"{lo}-{hi - 1}"}
                )
                if r.status_code != 202:
                    raise _Retry(f"PATCH {r.status_code} {_code(r)}")
                location = r.headers["location"]
            r = await client.put(location, params={"digest": digest}, headers=headers)
        else:
            r = await client.put(location, params={"digest": digest}, content=blob, headers=headers)
        if r.status_code != 201:
            raise _Retry(f"upload PUT {r.status_code} {_code(r)}")

    def _reason(self, reason: str) -> None:
        self.tally.transient_errors += 1
        self.tally.retry_reasons[reason] = self.tally.retry_reasons.get(reason, 0) + 1

    async def _puller(self, client: httpx.AsyncClient, tokens: Tokens, n: int) -> None:
        rng = random.Random(1000 + n)
        while not self.stop.is_set():
            if not self.tally.pushed:
                await asyncio.sleep(0.2)
                continue
            repo, manifest, blobs = rng.choice(self.tally.pushed)
            try:
                headers = await tokens.headers(repo, "pull")
                r = await client.get(
                    f"/v2/{repo}/manifests/{manifest}", headers={**headers, "Accept": OCI_MANIFEST}
                )
                self._judge(r, manifest, "manifest")
                for digest in blobs:
                    self._judge(await client.get(f"/v2/{repo}/blobs/{digest}", headers=headers), digest, repo)
                self.tally.pulls += 1
            except (httpx.HTTPError, _Retry):
                self.tally.transient_errors += 1
                await asyncio.sleep(0.2)

    def _judge(self, r: httpx.Response, digest: str, where: str) -> None:
        if r.status_code in RETRYABLE or r.status_code == 401:
            raise _Retry()
        if r.status_code == 404:
            self.tally.missing_blobs.append(f"{where}@{digest}")
            return
        if r.status_code != 200:
            raise _Retry()
        if digest_of(r.content) != digest:
            self.tally.verification_failures.append(f"{where}@{digest}")
        self.tally.blobs_verified += 1


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


class _Retry(Exception):
    """A transient failure (a process was killed, a 5xx, a 429): the client tries again."""
