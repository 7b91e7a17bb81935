"""``<data-dir>/run.json``: how to reach a running ``berth up`` (URL, database, NATS)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

NAME = "run.json"


@dataclass(frozen=True)
class RunInfo:
    """The endpoints of a running ``berth up``."""

    url: str
    database_url: str
    nats_url: str
    pid: int

    def write(self, data_dir: Path) -> None:
        """Write ``run.json`` (readable by the owner only: it names the database)."""
        path = data_dir / NAME
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @staticmethod
    def read(data_dir: Path) -> RunInfo | None:
        """The running instance's info, or None."""
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
            return RunInfo(**json.loads((data_dir / NAME).read_text()))
        return None

    @staticmethod
    def remove(data_dir: Path) -> None:
        """Forget the run (on stop)."""
        with contextlib.suppress(FileNotFoundError):
            (data_dir / NAME).unlink()


def resolve(data_dir: Path) -> tuple[str, str | None, str | None]:
    """``(url, database_url, nats_url)`` from the environment, else ``run.json``, else defaults."""
    info = RunInfo.read(data_dir)
    url = os.environ.get("BERTH_URL") or (info.url if info else "http://127.0.0.1:5000")
    db = os.environ.get("BERTH_DATABASE_URL") or (info.database_url if info else None)
    nats = os.environ.get("BERTH_NATS_URL") or (info.nats_url if info else None)
    return url, db, nats
