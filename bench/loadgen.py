"""Load generators: ``wrk`` (with ``bench/manifest.lua``) for GET, ``hey`` for HEAD.

wrk 4.1 cannot do HEAD (its parser waits for the body that ``Content-Length`` announces), so
HEAD rows use ``hey`` (Debian package ``hey``); each row compares both registries with the same
tool. The load generator's CPU share (user + system seconds over wall seconds) is reported with every
measurement, so a run where wrk itself saturates a core is visible in the raw results.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("manifest.lua")


class LoadFailure(RuntimeError):
    """wrk failed or saw errors (non-2xx/3xx answers, socket errors)."""


def wrk(
    url: str,
    *,
    method: str = "GET",
    connections: int = 1,
    seconds: float = 5.0,
    headers: dict[str, str] | None = None,
    body_file: Path | None = None,
) -> dict[str, Any]:
    """Load ``url`` with ``connections`` keep-alive connections for ``seconds``.

    With ``body_file`` (``method`` PUT), each request sends that body to ``url`` + a new
    ``<thread>-<counter>`` suffix (a new tag per request), with ``headers["Content-Type"]``.

    Returns:
        ``{"rps", "p50_ms", "p99_ms", "requests", "wrk_cpu"}`` (``wrk_cpu``: cores used by wrk).
    Raises:
        LoadFailure: non-2xx answers or socket errors.
    """
    headers = headers or {}
    env = {
        **os.environ,
        "WRK_METHOD": method,
        "WRK_ACCEPT": headers.get("Accept", ""),
        "WRK_AUTH": headers.get("Authorization", ""),
        "WRK_BODY_FILE": str(body_file or ""),
        "WRK_CONTENT_TYPE": headers.get("Content-Type", ""),
    }
    threads = min(connections, 2)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    duration = f"{max(1, round(seconds))}s"
    proc = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            duration,
            "--timeout",
            "10s",
            "-s",
            str(SCRIPT),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        raise LoadFailure(f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    out = json.loads(line)
    bad = sum(out[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    if bad or not out["requests"]:
        raise LoadFailure(f"wrk saw {bad} errors of {out['requests']} requests on {method} {url}: {out}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rps": out["requests"] / (out["duration_us"] / 1e6),
        "p50_ms": out["p50_us"] / 1000,
        "p99_ms": out["p99_us"] / 1000,
        "requests": out["requests"],
        "wrk_cpu": cpu / wall,
    }


def hey(
    url: str,
    *,
    method: str = "HEAD",
    connections: int = 1,
    seconds: float = 5.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Like ``wrk`` but with ``hey`` (any method, e.g. HEAD); same result keys.

    Raises:
        LoadFailure: hey failed, or saw non-2xx answers or errors.
    """
    cmd = [
        "hey",
        "-z",
        f"{max(1, round(seconds))}s",
        "-c",
        str(connections),
        "-m",
        method,
        "-disable-compression",
    ]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    text = proc.stdout
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", text)}
    ok = sum(n for c, n in codes.items() if 200 <= c < 300)
    if proc.returncode != 0 or not ok or ok != sum(codes.values()) or "Error distribution" in text:
        raise LoadFailure(f"hey failed or saw errors on {method} {url}: {text[-1500:]} {proc.stderr[-500:]}")
    pct = {int(p): float(v) for p, v in re.findall(r"(\d+)% in ([\d.]+) secs", text)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rps": rps,
        "p50_ms": pct[50] * 1000,
        "p99_ms": pct[99] * 1000,
        "requests": ok,
        "wrk_cpu": cpu / wall,
    }
