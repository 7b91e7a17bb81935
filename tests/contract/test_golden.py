"""Golden JSON examples of every event type in the catalogue (docs/DESIGN.md §2).

One file per type and schema version, ``golden/<type>.v<schema_version>.json`` (payload only).
A new event type without a golden file fails here; so does any change to a payload's schema
that would alter what is stored for the golden example (rename, new required field, retyping).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from berth_common.events import Event, all_types, decode

GOLDEN = Path(__file__).parent / "golden"
TYPES = sorted(all_types().items())
NAME = re.compile(r"^(?P<aggregate>[a-z][a-z0-9]*)\.(?P<fact>[a-z][a-z0-9_]*[a-z0-9])$")
IRREGULAR_PAST = frozenset({"sent", "built", "made", "set", "put", "taken", "given", "begun", "run"})


def golden_path(type_name: str, version: int) -> Path:
    """``golden/<type>.v<version>.json``."""
    return GOLDEN / f"{type_name}.v{version}.json"


@pytest.mark.parametrize(("type_name", "cls"), TYPES, ids=[t for t, _ in TYPES])
def test_every_type_has_a_golden_file(type_name: str, cls: type[Event]) -> None:
    assert golden_path(type_name, cls.schema_version).is_file(), (
        f"add {golden_path(type_name, cls.schema_version).relative_to(Path.cwd())}"
    )


def test_no_stale_golden_files() -> None:
    """Each golden file names a registered type at a version it has had (≤ current)."""
    types = all_types()
    for path in GOLDEN.glob("*.json"):
        type_name, _, version = path.stem.rpartition(".v")
        assert type_name in types, f"{path.name}: no such event type"
        assert 1 <= int(version) <= types[type_name].schema_version, path.name


@pytest.mark.parametrize(("type_name", "cls"), TYPES, ids=[t for t, _ in TYPES])
def test_golden_round_trip(type_name: str, cls: type[Event]) -> None:
    """decode(golden) re-serialises to exactly the golden JSON: the stored schema is stable."""
    path = golden_path(type_name, cls.schema_version)
    payload = json.loads(path.read_text())
    event = decode(type_name, cls.schema_version, payload)
    assert type(event) is cls
    assert event.model_dump(mode="json") == payload
    assert json.loads(event.model_dump_json()) == payload


@pytest.mark.parametrize(("type_name", "cls"), TYPES, ids=[t for t, _ in TYPES])
def test_golden_rejects_unknown_fields(type_name: str, cls: type[Event]) -> None:
    """Payloads are closed: a misspelt or future field is an error, not silently dropped."""
    payload = json.loads(golden_path(type_name, cls.schema_version).read_text())
    with pytest.raises(ValueError):
        decode(type_name, cls.schema_version, {**payload, "unexpected_field": 1})


@pytest.mark.parametrize(("type_name", "cls"), TYPES, ids=[t for t, _ in TYPES])
def test_type_names_are_past_tense_facts(type_name: str, cls: type[Event]) -> None:
    """``<aggregate>.<fact>``, lower case, past tense; never a Python import path."""
    match = NAME.match(type_name)
    assert match, f"{type_name!r} is not <aggregate>.<fact>"
    last_word = match["fact"].rsplit("_", 1)[-1]
    assert last_word.endswith("ed") or last_word in IRREGULAR_PAST, f"{type_name!r}: not past tense"
    assert cls.type_name == type_name
    assert cls.__module__ not in type_name and cls.__name__ not in type_name
    assert "berth" not in type_name and "Event" not in type_name
