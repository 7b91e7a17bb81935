"""Start CNCF Distribution 2.8 (Debian's ``docker-registry``) as a reference registry.

Used to validate black-box tests against the reference implementation before they run against
Berth, and by the benchmarks. See ``shared/CLIENTS.md``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.net import free_port, wait_http


@contextlib.contextmanager
def reference_registry(workdir: Path) -> Iterator[str]:
    """Run ``docker-registry`` on a free loopback port with filesystem storage under ``workdir``.

    Yields:
        ``"127.0.0.1:PORT"``, ready to serve.
    Raises:
        FileNotFoundError: if ``docker-registry`` is not installed.
    """
    exe = shutil.which("docker-registry")
    if exe is None:
        raise FileNotFoundError("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    root = workdir / "ref-storage"
    root.mkdir(parents=True, exist_ok=True)
    config = workdir / "ref-config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"http: {{addr: 127.0.0.1:{port}, secret: test-secret}}\n"
        "storage:\n"
        f"  filesystem: {{rootdirectory: {root}}}\n"
        "  delete: {enabled: true}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    log = open(workdir / "ref-registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=log, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
