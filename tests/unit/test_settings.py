"""Settings: environment, YAML file, and the documented example in docs/CONFIGURATION.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from berth_common.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_documented_yaml_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/CONFIGURATION.md has no yaml example"
    config = tmp_path / "berth.yaml"
    config.write_text(block.group(1))
    for key in list(__import__("os").environ):
        if key.startswith("BERTH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BERTH_CONFIG", str(config))
    settings = Settings()
    assert settings.database_url == "postgresql://berth@db.internal:5432/berth"
    assert settings.storage.root == Path("/var/lib/berth/storage")
    assert settings.uploads.max_age_seconds == 43200
    assert settings.log_format == "json"


def test_environment_beats_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "berth.yaml"
    config.write_text("nats_stream: FROM_YAML\nstorage: {root: /from/yaml}\n")
    monkeypatch.setenv("BERTH_CONFIG", str(config))
    monkeypatch.setenv("BERTH_NATS_STREAM", "FROM_ENV")
    settings = Settings()
    assert settings.nats_stream == "FROM_ENV"
    assert settings.storage.root == Path("/from/yaml")


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for name in Settings.model_fields:
        assert f"`{name}" in text, f"setting {name} missing from docs/CONFIGURATION.md"
