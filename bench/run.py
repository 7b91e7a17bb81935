"""Run the benchmark: ``uv run python -m bench.run [--quick] [--only pull,push,…] [--publish]
[--store s3]``.

Starts Berth (``berth serve all --workers <cores>``, fresh database and stream) and Distribution
2.8 side by side on loopback, runs every case A/B/A/B (the first registry alternates per round),
writes raw JSON to ``bench/results/`` and, with ``--publish``, the table to
``docs/PERFORMANCE.md`` and the JSON to ``docs/performance-results.json``.

``--store s3`` puts both registries' blobs on one S3 server started for the run (a ``moto``
server, or MinIO where containers run: ``tests/support/stores.py``), one bucket each: Berth's
S3 driver against Distribution's ``s3`` driver (``regionendpoint``). Only the ``pull``, ``push``
and ``skopeo`` cases apply; the results are not published automatically (the filesystem table
stays the published one).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report, servers
from bench.auth import Tokens
from bench.client import Registry
from bench.common import Case, Context, GiB, MiB
from bench.requests import Listing, Manifests, Skopeo
from bench.transfer import PeakRss, Pull, Push, ceilings, cleanup

ROOT = Path(__file__).resolve().parents[1]
CASES = ("ceiling", "pull", "push", "manifests", "skopeo", "rss", "listing")
S3_CASES = ("pull", "push", "skopeo")  # what --store s3 measures (the rest does not touch blobs)
CEILING_CASES = frozenset({"pull", "push", "rss"})  # cases with a row that has a physical ceiling
CEILING_OF = {
    "pull_1": "loopback_get_1",
    "pull_8": "loopback_get_8",
    "push_mono": "push",
    "push_5m": "push",
    "push_64m": "push",
    "push_big": "push",
}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, 2 rounds (a smoke run, ~4 min)")
    p.add_argument(
        "--only", help=f"comma-separated subset of {CASES} (default: all; with --store s3: {S3_CASES})"
    )
    p.add_argument("--rounds", type=int, help="rounds per case (default 3; quick 2)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Berth worker processes")
    p.add_argument("--publish", action="store_true", help="write docs/PERFORMANCE.md and the JSON copy")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()), help="scratch parent")
    p.add_argument(
        "--store",
        choices=("filesystem", "s3"),
        default="filesystem",
        help="where both registries keep blobs (s3: one S3 server for the run, a bucket each)",
    )
    args = p.parse_args(argv)
    args.only = args.only or ",".join(S3_CASES if args.store == "s3" else CASES)
    unknown = [c for c in _wanted(args) if c not in CASES]
    if unknown or not _wanted(args):
        p.error(
            f"--only: unknown case(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}"
        )
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if not args.workdir.is_dir():
        p.error(f"--workdir {args.workdir} is not an existing directory")
    if args.store == "s3" and (not set(_wanted(args)) <= set(S3_CASES) or args.publish):
        p.error(f"--store s3 measures only {', '.join(S3_CASES)} and is not published (no --publish)")
    if args.publish and (args.quick or set(_wanted(args)) != set(CASES)):
        p.error(
            "--publish replaces the whole published table: run every case at full size"
            " (no --quick, no --only)"
        )
    missing = [tool for tool in _tools(_wanted(args)) if shutil.which(tool) is None]
    if missing:
        p.error(f"missing tools on PATH: {', '.join(missing)} (see docs/PERFORMANCE.md, Running it)")
    return args


def _wanted(args: argparse.Namespace) -> list[str]:
    return [c.strip() for c in args.only.split(",") if c.strip()]


def _tools(wanted: list[str]) -> list[str]:
    """The programs the chosen cases run (Distribution always; the load generators by case)."""
    tools = ["docker-registry", "curl"]
    tools += ["nginx", "socat", "dd"] if "ceiling" in wanted else []
    tools += ["wrk", "hey"] if {"manifests", "listing"} & set(wanted) else []
    tools += ["skopeo"] if "skopeo" in wanted else []
    return tools


def _context(args: argparse.Namespace, workdir: Path) -> Context:
    quick = args.quick
    return Context(
        workdir=workdir,
        quick=quick,
        rounds=args.rounds or (2 if quick else 3),
        blob_size=256 * MiB if quick else GiB,
        big_size=2 * GiB if quick else 10 * GiB,
        wrk_seconds=2.0 if quick else 5.0,
        listing_count=1000 if quick else 10_000,
    )


def _check_disk(ctx: Context, wanted: list[str]) -> None:
    need = 3 * ctx.blob_size + 2 * GiB + (ctx.big_size if "rss" in wanted else 0)
    free = shutil.disk_usage(ctx.workdir).free
    if free < need:
        sys.exit(f"bench: {free / GiB:.1f} GiB free under {ctx.workdir}, need {need / GiB:.1f} GiB")


def run_case(
    case: Case,
    regs: list[Registry],
    ctx: Context,
    *,
    settle: Callable[[str], float] = lambda name: 0.0,
    ceiling: Callable[[], dict[str, float]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Set up both registries, then ``ctx.rounds`` rounds alternating which goes first.

    In every round the machine's ceilings are measured first (``ceiling``, when given: kept as
    the pseudo-registry ``"ceiling"``, so a row's ceiling is the median of its own rounds), and
    after each registry's run ``settle(name)`` waits out the background work that run left
    (Berth's relay and consumers) before anything else is measured; its seconds are kept as
    the extra key ``settle_seconds``.
    """
    samples: dict[str, dict[str, list[float]]] = {r.name: {} for r in regs}
    for reg in regs:
        t = time.monotonic()
        case.setup(reg, ctx)
        print(f"  setup {case.name} on {reg.name}: {time.monotonic() - t:.1f}s", flush=True)
    for round_no in range(ctx.rounds):
        if ceiling is not None:
            limits = ceiling()
            for key, value in limits.items():
                samples.setdefault("ceiling", {}).setdefault(key, []).append(value)
            print(f"  {case.name} round {round_no} ceilings (MB/s): {limits}", flush=True)
        order = regs if round_no % 2 == 0 else regs[::-1]
        for reg in order:
            values = case.run(reg, ctx, round_no)
            values["settle_seconds"] = settle(reg.name)
            for key, value in values.items():
                samples[reg.name].setdefault(key, []).append(value)
            main = {r.key: round(values[r.key], 2) for r in case.rows if r.key in values}
            print(f"  {case.name} round {round_no} {reg.name}: {main}", flush=True)
    return samples


def measure_ceilings(ctx: Context, nginx_host: str) -> dict[str, float]:
    """The machine's ceilings now (``bench.transfer.ceilings``) plus ``push``, the smaller of
    the copy and the loopback upload (MB/s)."""
    limits = ceilings(ctx, nginx_host)
    limits["push"] = min(limits["copy"], limits["loopback_put"])
    return limits


def _ceiling_medians(samples: dict[str, dict[str, dict[str, list[float]]]]) -> dict[str, dict[str, float]]:
    """Per case, the median of each ceiling over that case's rounds (MB/s)."""
    return {
        case: {key: report.summary(values)["median"] for key, values in by_reg["ceiling"].items()}
        for case, by_reg in samples.items()
        if "ceiling" in by_reg
    }


def _rows(cases: list[Case], samples: dict[str, dict[str, dict[str, list[float]]]]) -> list[dict[str, Any]]:
    rows = []
    ceilings_of = _ceiling_medians(samples)
    for case in cases:
        for row in case.rows:
            b = report.summary(samples[case.name]["berth"].get(row.key, []))
            d = report.summary(samples[case.name]["distribution"].get(row.key, []))
            ceiling = ceilings_of.get(case.name, {}).get(CEILING_OF.get(row.key, ""))
            rows.append(
                {
                    "key": row.key,
                    "case": case.name,
                    "label": row.label,
                    "unit": row.unit,
                    "better": row.better,
                    "berth": b,
                    "distribution": d,
                    "ratio": report.ratio(row, b["median"], d["median"]),
                    "ceiling": ceiling,
                    # a median above the ceiling of its own rounds: the ceiling does not bound it
                    "above_ceiling": ceiling is not None
                    and any(s["median"] is not None and s["median"] > ceiling for s in (b, d)),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Entry point (see the module docstring)."""
    args = _args(argv)
    wanted = _wanted(args)
    signal.signal(signal.SIGINT, _interrupt_once)
    workdir = Path(tempfile.mkdtemp(prefix="berth-bench-", dir=args.workdir))
    ctx = _context(args, workdir)
    _check_disk(ctx, wanted)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    samples: dict[str, Any] = {}
    settled: dict[str, float] = {}
    cases: list[Case] = []
    try:
        with contextlib.ExitStack() as stack:
            buckets = _s3_buckets(stack) if args.store == "s3" else {}
            b = stack.enter_context(servers.berth(workdir, args.workers, buckets.get("berth")))
            d = stack.enter_context(servers.distribution(workdir, buckets.get("distribution")))
            regs = [Registry("berth", b.host, Tokens(b.url)), Registry("distribution", d.host, Tokens(None))]
            cases = [
                c
                for c in (
                    Pull(),
                    Push(),
                    Manifests(),
                    Skopeo(),
                    PeakRss(
                        {"berth": b.pids, "distribution": d.pids},
                        {"berth": b.storage, "distribution": d.storage},
                    ),
                    Listing(),
                )
                if c.name in wanted
            ]
            ngx = stack.enter_context(servers.nginx(workdir, workdir)) if "ceiling" in wanted else None

            def settle(name: str) -> float:
                return b.settle() if name == "berth" else 0.0

            for case in cases:
                print(f"{case.name}:", flush=True)
                waited = b.settle()  # the previous case's background work (relay, consumers)
                settled[case.name] = round(waited, 1)
                print(f"  berth's background work settled after {waited:.1f}s", flush=True)
                measure = None
                if ngx is not None and case.name in CEILING_CASES:
                    measure = functools.partial(measure_ceilings, ctx, ngx)
                samples[case.name] = run_case(case, regs, ctx, settle=settle, ceiling=measure)
    except BaseException as exc:
        if samples:  # keep the cases that finished: a full run takes half an hour
            done = [c for c in cases if c.name in samples]
            partial = _save(
                _results(args, ctx, started, settled, done, samples), f"{type(exc).__name__}: {exc}"
            )
            print(
                f"bench: stopped ({type(exc).__name__}); finished cases saved in {partial}", file=sys.stderr
            )
        raise
    finally:
        cleanup(ctx)
        shutil.rmtree(workdir, ignore_errors=True)
    results = _results(args, ctx, started, settled, cases, samples)
    out = _save(results, None)
    print(report.table(results))
    print(f"raw results: {out}")
    if args.publish:
        (ROOT / "docs" / "performance-results.json").write_text(json.dumps(results, indent=1))
        report.publish(ROOT / "docs" / "PERFORMANCE.md", results)


def _s3_buckets(stack: contextlib.ExitStack) -> dict[str, servers.S3Bucket]:
    """Start the tests' S3 server (moto here, MinIO with containers) for the run, and make a
    bucket for each registry on it."""
    from tests.support import stores

    s3 = stack.enter_context(stores.s3_server())
    print(f"S3 server: {s3.kind} at {s3.endpoint}", flush=True)
    return {
        name: servers.S3Bucket(s3.endpoint, s3.new_bucket(), s3.access_key, s3.secret_key, s3.region)
        for name in ("berth", "distribution")
    }


def _interrupt_once(signum: int, frame: object) -> None:
    """Ctrl-C stops the run once; later ones are ignored so that the servers, the database and
    the stream are still removed (the terminal and ``uv run`` each deliver one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _results(
    args: argparse.Namespace,
    ctx: Context,
    started: str,
    settled: dict[str, float],
    cases: list[Case],
    samples: dict[str, Any],
) -> dict[str, Any]:
    """The raw JSON: run settings, one summary per row, every sample."""
    return {
        "meta": {
            "started": started,
            "quick": ctx.quick,
            "store": args.store,
            "rounds": ctx.rounds,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "blob_bytes": ctx.blob_size,
            "big_bytes": ctx.big_size,
            "wrk_seconds": ctx.wrk_seconds,
            "listing_count": ctx.listing_count,
            "ceiling_mbps": _ceiling_medians(samples),  # per case, medians of its rounds
            "berth_settle_seconds": settled,  # before each case; after each run: samples
        },
        "rows": _rows(cases, samples),
        "samples": samples,
    }


def _save(results: dict[str, Any], failed: str | None) -> Path:
    """Write ``bench/results/<start time>[-partial].json``; return its path."""
    if failed is not None:
        results = {**results, "meta": {**results["meta"], "stopped_by": failed}}
    name = str(results["meta"]["started"]).replace(":", "") + ("-partial" if failed else "")
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return out


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
