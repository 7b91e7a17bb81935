"""Settings: environment, YAML file, and the documented example in docs/CONFIGURATION.md."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

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


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The settings models inside ``annotation`` (itself, ``X | None``, ``dict[str, X]``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models(arg)]


def _nested_names(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel] | None]]:
    """Every dotted setting name below the top level, at any depth, with the model that holds
    it when that model is the value of a collection (``stores.<name>.kind``: ``*`` in the name)."""
    names: list[tuple[str, type[BaseModel] | None]] = []
    for name, field in model.model_fields.items():
        collection = typing.get_origin(field.annotation) in (dict, list)
        for inner in _models(field.annotation):
            path = f"{prefix}{name}.*." if collection else f"{prefix}{name}."
            for sub in inner.model_fields:
                names.append((path + sub, inner if collection else None))
            names.extend(_nested_names(inner, path))
    return names


def test_every_nested_setting_is_documented() -> None:
    """Every nested name at every depth: ``uploads.lease_seconds``, … A collection of models
    (``stores: {name: StorageSettings}``) counts as documented when its model's fields are
    documented under another setting of the same model (``storage.kind``) or spelled out with
    any key (``stores.<name>.kind``)."""
    text = DOC.read_text()
    names = _nested_names(Settings)
    for name, _ in names:
        if "*" not in name:
            assert f"`{name}`" in text, f"setting {name} missing from docs/CONFIGURATION.md"
    for name, holder in names:
        if "*" not in name:
            continue
        parent, sub = name.rsplit(".", 1)
        spelled = re.search(re.escape(f"`{parent}").replace(r"\*", r"[^`.]+") + re.escape(f".{sub}`"), text)
        same_model_documented = any(
            isinstance(f.annotation, type) and f.annotation is holder for f in Settings.model_fields.values()
        )
        assert spelled or same_model_documented, f"setting {name} missing from docs/CONFIGURATION.md"
    assert len(names) > 40, "the walk no longer finds the nested settings"


def test_berth_up_pins_embedded_services_from_environment_unless_options_say_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from berth.server_cli import _embedded

    monkeypatch.setenv("BERTH_EMBEDDED__NATS_PORT", "4999")
    monkeypatch.setenv("BERTH_EMBEDDED__POSTGRES_SOCKET_DIR", str(tmp_path / "env-sockets"))
    services = _embedded(tmp_path / "data", True, True, 5000, None, None)
    assert services._nats is not None and services._nats.pinned == 4999
    assert services._postgres is not None and services._postgres.socket_dir == tmp_path / "env-sockets"
    services = _embedded(tmp_path / "data", True, True, 5000, 4888, tmp_path / "opt-sockets")
    assert services._nats is not None and services._nats.pinned == 4888
    assert services._postgres is not None and services._postgres.socket_dir == tmp_path / "opt-sockets"
    with pytest.raises(typer.BadParameter, match="the NATS port 5000 is the port Berth serves on"):
        _embedded(tmp_path / "data", True, True, 5000, 5000, None)


def test_berth_up_takes_database_and_nats_from_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``berth up`` starts embedded PostgreSQL/NATS only for what neither the environment nor
    the ``BERTH_CONFIG`` file configures (it used to look at the environment alone)."""
    from berth.server_cli import configured_services

    for key in ("BERTH_DATABASE_URL", "BERTH_NATS_URL"):
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "berth.yaml"
    config.write_text("database_url: postgresql://berth@db.file/berth\nnats_url: nats://nats.file:4222\n")
    monkeypatch.setenv("BERTH_CONFIG", str(config))
    assert configured_services() == ("postgresql://berth@db.file/berth", "nats://nats.file:4222")
    monkeypatch.setenv("BERTH_NATS_URL", "nats://nats.env:4222")
    assert configured_services() == ("postgresql://berth@db.file/berth", "nats://nats.env:4222")
    config.write_text("log_level: info\n")
    monkeypatch.delenv("BERTH_NATS_URL")
    assert configured_services() == (None, None)  # both embedded
