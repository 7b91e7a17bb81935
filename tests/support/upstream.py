"""CNCF Distribution 2.8 (Debian's ``docker-registry``) as a connector's upstream, in the three
auth modes the connector tests need: anonymous, htpasswd (Basic) and token auth (with the test
token server of ``tests.support.token_server``).

Every request the upstream serves is in its access log (Apache combined format, on stdout):
``Distribution.count`` counts them, which is how the tests prove "fetched upstream once".
``stop``/``start`` restart the same registry on the same port and storage (the "upstream down"
tests). Started with a clean environment (Distribution reads every ``REGISTRY_*`` variable as
configuration, and its S3 driver panics on ``AWS_CA_BUNDLE``; shared/CLIENTS.md).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.net import free_port, wait_http
from tests.support.token_server import TokenServer, token_server

USER, PASSWORD = "mirror-bot", "upstream-secret-pw-4711"


@dataclass
class Distribution:
    """A running ``docker-registry`` on ``host`` (``127.0.0.1:PORT``)."""

    host: str
    root: Path
    config: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    tokens: TokenServer | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    def start(self) -> None:
        """Start (again) on the same port and storage; wait until ``/v2/`` answers."""
        exe = shutil.which("docker-registry")
        assert exe, "docker-registry is not installed (apt-get install docker-registry)"
        log_path = self.log_path.with_name(f"{self.log_path.stem}-{len(self.logs)}.log")
        self.logs.append(log_path)
        env = {"PATH": "/usr/bin:/bin"}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen([exe, "serve", str(self.config)], stdout=log, stderr=log, env=env)
        wait_http(f"{self.url}/v2/")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def access_log(self) -> list[str]:
        """Every access-log line so far (all runs), e.g.
        ``127.0.0.1 - - [...] "GET /v2/x/blobs/sha256:… HTTP/1.1" 200 1234 "" "ua"``."""
        lines: list[str] = []
        for path in self.logs:
            if path.exists():
                lines += [
                    ln for ln in path.read_text(errors="replace").splitlines() if '" ' in ln and "HTTP/" in ln
                ]
        return [ln for ln in lines if not ln.startswith("time=")]

    def count(
        self, method: str, path_regex: str, status: int | None = None, agent: str | None = "berth-connector"
    ) -> int:
        """How many requests ``method`` on a path matching ``path_regex`` (anchored) it served
        (with ``status``, if given) to clients whose User-Agent is ``agent`` (default: Berth's
        connectors; ``None``: anyone)."""
        pattern = re.compile(rf'"{method} ({path_regex}) HTTP/1\.1" (\d+) .*"([^"]*)"$')
        found = [m for m in map(pattern.search, self.access_log()) if m]
        return sum(1 for m in found if (status is None or int(m[2]) == status) and agent in (None, m[3]))

    def corrupt_blob(self, digest: str) -> None:
        """Flip one byte of the stored blob (same size): it then serves wrong bytes for it."""
        hexpart = digest.split(":", 1)[1]
        data = self.root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))


def _config(port: int, root: Path, auth: str) -> str:
    return (
        "version: 0.1\n"
        "log: {level: error}\n"
        f"http: {{addr: 127.0.0.1:{port}, secret: test-secret}}\n"
        "storage:\n"
        f"  filesystem: {{rootdirectory: {root}}}\n"
        "  delete: {enabled: true}\n" + auth
    )


@contextlib.contextmanager
def distribution(workdir: Path, auth: str = "none") -> Iterator[Distribution]:
    """Run Distribution under ``workdir`` with ``auth`` ``"none"``, ``"htpasswd"`` (user
    ``USER``, password ``PASSWORD``) or ``"token"`` (a test token server checking the same
    credentials). Stopped at exit.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port, root = free_port(), workdir / f"upstream-{auth}"
    root.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        tokens = None
        auth_yaml = ""
        if auth == "htpasswd":
            users = workdir / "htpasswd"
            subprocess.run(["htpasswd", "-Bbc", str(users), USER, PASSWORD], check=True, capture_output=True)
            auth_yaml = f"auth:\n  htpasswd: {{realm: upstream, path: {users}}}\n"
        elif auth == "token":
            tokens = stack.enter_context(token_server(workdir, {USER: PASSWORD}))
            auth_yaml = (
                "auth:\n  token:\n"
                f"    realm: {tokens.url}/token\n    service: upstream\n    issuer: test-issuer\n"
                f"    rootcertbundle: {tokens.cert_path}\n"
            )
        config = workdir / f"upstream-{auth}.yml"
        config.write_text(_config(port, root, auth_yaml))
        upstream = Distribution(
            f"127.0.0.1:{port}", root, config, workdir / f"upstream-{auth}", tokens=tokens
        )
        upstream.start()
        try:
            yield upstream
        finally:
            upstream.stop()
