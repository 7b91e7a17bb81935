"""Run the real ``berth`` command as a new user would: a subprocess, from a folder of its own,
with its own config home (stored logins), no inherited ``BERTH_*`` settings, and — when it must
be — on a pseudo-terminal, so password prompts are the real hidden ones."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BERTH = Path(sys.executable).with_name("berth")  # the console script of the venv under test
TIMEOUT = 120.0  # seconds for one command


@dataclass
class Shell:
    """A user's shell: working folder ``cwd``, ``XDG_CONFIG_HOME`` ``config``, variables ``env``."""

    cwd: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The process environment: this machine's, minus every ``BERTH_*``, plus ours."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
        return {**base, "XDG_CONFIG_HOME": str(self.config), **self.env, **(extra or {})}

    def run(
        self, *args: str, stdin: str | None = None, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``berth ARGS`` with ``stdin`` piped in (else none: not a terminal).

        Raises:
            AssertionError: if ``ok`` and the command fails (with its output).
        """
        done = subprocess.run(
            [str(BERTH), *args],
            cwd=self.cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self.environment(env),
        )
        if ok:
            assert done.returncode == 0, f"berth {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def run_on_terminal(self, args: Sequence[str], answers: Sequence[tuple[str, str]]) -> tuple[int, str]:
        """``berth ARGS`` on a pseudo-terminal (its controlling tty): for each ``(prompt, text)``
        wait until ``prompt`` was printed, then type ``text`` and Enter. A hidden prompt turns
        echo off before it prints its last character (click prints ``Password:``, getpass the
        space after it), so a ``prompt`` must end with that space. Returns the exit code
        and everything the terminal showed (typed text appears only if it was echoed).

        Raises:
            AssertionError: if a prompt does not come within the timeout (with the output).
        """
        pid, master = pty.fork()
        if pid == 0:  # the child: a new session whose controlling terminal is the pty
            os.chdir(self.cwd)
            os.execve(str(BERTH), [str(BERTH), *args], self.environment())
        shown = ""
        try:
            for prompt, text in answers:
                shown = _read_until(master, shown, prompt)
                os.write(master, text.encode() + b"\n")
            shown = _read_until(master, shown, None)
        finally:
            os.close(master)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), shown


def _read_until(master: int, shown: str, wanted: str | None) -> str:
    """Read the terminal until ``wanted`` appears after what was ``shown`` (``None``: until the
    program ends); returns all output so far."""
    start, deadline = len(shown), time.monotonic() + TIMEOUT
    while wanted is None or wanted not in shown[start:]:
        assert time.monotonic() < deadline, f"no {wanted!r} on the terminal; it showed:\n{shown}"
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the program ended and closed the terminal
            chunk = b""
        if not chunk:
            assert wanted is None, f"ended before {wanted!r}; it showed:\n{shown}"
            return shown
        shown += chunk.decode(errors="replace")
    return shown
