"""Run real registry clients (skopeo, podman) as subprocesses with readable failures.

Every helper raises ``AssertionError`` carrying the command line, exit code, stdout and stderr,
so a failing end-to-end test says what the client saw. See ``shared/CLIENTS.md`` for the flags.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CLIENT_TIMEOUT = 180.0  # seconds for one client command


def run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = CLIENT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture its output as text.

    Raises:
        AssertionError: if ``check`` and the command exits non-zero or runs over ``timeout`` s.
    """
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"timed out after {timeout}s: {shlex.join(cmd)}\n{exc.stderr!r}") from exc
    if check and proc.returncode != 0:
        raise AssertionError(describe(proc))
    return proc


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A multi-line report of a finished command: command line, exit code, stdout, stderr."""
    return (
        f"command: {shlex.join(proc.args)}\nexit code: {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )


def timed(cmd: Sequence[str]) -> float:
    """Run ``cmd`` (checked, see :func:`run`) and return its wall time in seconds."""
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


def docker_ref(host: str, repo: str, ref: str) -> str:
    """``docker://HOST/REPO:TAG`` (or ``@sha256:...`` when ``ref`` is a digest) for skopeo."""
    sep = "@" if ref.startswith("sha256:") else ":"
    return f"docker://{host}/{repo}{sep}{ref}"


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    """``skopeo copy`` over plain HTTP on both sides; ``extra`` e.g. ``--all``, ``--format v2s2``."""
    run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest])


def skopeo_copy_cmd(src: str, dest: str, *extra: str) -> list[str]:
    """The command line :func:`skopeo_copy` runs (for :func:`timed`)."""
    return ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest]


def inspect_raw(image: str) -> bytes:
    """The exact manifest bytes of ``image`` (``docker://...`` or ``oci:DIR:TAG``)."""
    tls = ["--tls-verify=false"] if image.startswith("docker://") else []
    proc = subprocess.run(["skopeo", "inspect", *tls, "--raw", image], capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"skopeo inspect --raw {image} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def inspect(image: str) -> dict[str, Any]:
    """``skopeo inspect`` of ``image`` as JSON (Digest, Layers, Architecture, Os, ...)."""
    tls = ["--tls-verify=false"] if image.startswith("docker://") else []
    result: dict[str, Any] = json.loads(run(["skopeo", "inspect", *tls, image]).stdout)
    return result


def list_tags(host: str, repo: str) -> list[str]:
    """``skopeo list-tags`` of ``HOST/REPO``, sorted."""
    out = run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"]).stdout
    return sorted(json.loads(out)["Tags"])


class Podman:
    """podman with all its storage under one folder (vfs driver, no system-wide state).

    ``podman run`` does not work on these machines; pull, push and inspect do. podman refuses
    a run root longer than 50 characters, so ``root`` should be short (e.g. ``/tmp/e2e-pmXXXX``).
    """

    def __init__(self, root: Path) -> None:
        """Use ``root/root`` and ``root/runroot`` as podman's storage and run directories."""
        self.opts = [
            "--root",
            str(root / "root"),
            "--runroot",
            str(root / "runroot"),
            "--storage-driver",
            "vfs",
        ]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``podman <opts> *args``; see :func:`run` for errors."""
        return run(["podman", *self.opts, *args], check=check)

    def base_cmd(self) -> list[str]:
        """``["podman", <storage options>]``, to extend with a subcommand."""
        return ["podman", *self.opts]

    def pull_cmd(self, image: str) -> list[str]:
        """The command line that pulls ``image`` (``HOST/REPO:TAG``) over plain HTTP."""
        return [*self.base_cmd(), "pull", "--tls-verify=false", image]
