"""The import rules of pyproject.toml's ``[tool.importlinter]`` hold (``lint-imports``): services
never import each other, ``berth_common`` never imports a service, and the storage drivers
import nothing of the registry (docs/ARCHITECTURE.md, "Contracts between services")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([exe, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_import_contracts_are_kept() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_a_broken_rule_is_reported(tmp_path: Path) -> None:
    """The check can fail: ``berth_common.storage.factory`` imports the filesystem driver."""
    config = tmp_path / "broken.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["berth_common"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "no filesystem driver"\n'
        'type = "forbidden"\n'
        'source_modules = ["berth_common.storage.factory"]\n'
        'forbidden_modules = ["berth_common.storage.filesystem"]\n'
    )
    done = _lint_imports("--config", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no filesystem driver BROKEN" in done.stdout
