"""``berth serve SERVICE`` subprocesses for end-to-end tests of separately run services.

Each process runs ``uv run berth serve ARGS --host 127.0.0.1 --port P`` from the repository root
with the environment it is given, its output in ``workdir/NAME.log``, in a session of its own
(stopped with SIGTERM, then the whole group SIGKILLed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0  # seconds for every process to answer (several start at once)


@dataclass
class ServeProcess:
    """One ``uv run berth serve`` subprocess and its log file."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """The last 4,000 characters of the process's output, headed by its name."""
        return f"--- {self.name} ---\n" + self.log_path.read_text(errors="replace")[-4000:]


def start(name: str, args: Sequence[str], env: dict[str, str], workdir: Path) -> ServeProcess:
    """Start ``berth serve ARGS`` on a free loopback port (does not wait for it)."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["uv", "run", "berth", "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ServeProcess(name, f"http://127.0.0.1:{port}", proc, log_path)


def wait_ready(processes: Sequence[ServeProcess], path: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``path`` on every process until it answers 200 (or 401, a token challenge).

    Raises:
        RuntimeError: a process exits or is not ready within ``timeout`` s (with its log).
    """
    deadline = time.monotonic() + timeout
    for p in processes:
        while True:
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.proc.returncode}\n{p.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(p.url + path, timeout=2.0).status_code in (200, 401):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{p.name} not ready after {timeout}s\n{p.log()}")
            time.sleep(0.2)


def stop(processes: Sequence[ServeProcess]) -> None:
    """SIGTERM every process, wait up to 20 s each, then SIGKILL their process groups."""
    for p in processes:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.proc.pid, signal.SIGKILL)
        p.proc.wait(10)
