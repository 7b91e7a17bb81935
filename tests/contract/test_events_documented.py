"""Every registered event type is in docs/EVENTS.md's catalogue, at its current schema version.

The catalogue table's rows start ``| `<type>` | <version> |``. A new type, a bumped schema
version or a type that was renamed fails here until the table says so; a row for a type that
no longer exists fails too.
"""

from __future__ import annotations

import re
from pathlib import Path

from berth_common.events import all_types

EVENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"
ROW = re.compile(r"^\| `(?P<type>[a-z][a-z0-9_.]*)` \| (?P<version>\d+) \|", re.M)


def _documented() -> dict[str, int]:
    return {m["type"]: int(m["version"]) for m in ROW.finditer(EVENTS_MD.read_text(encoding="utf-8"))}


def test_every_registered_type_is_documented_at_its_version() -> None:
    documented = _documented()
    registered = {name: cls.schema_version for name, cls in all_types().items()}
    missing = sorted(set(registered) - set(documented))
    assert missing == [], f"docs/EVENTS.md has no row for {missing}"
    stale = {n: (documented[n], v) for n, v in registered.items() if documented[n] != v}
    assert stale == {}, f"docs/EVENTS.md version differs from the code (documented, code): {stale}"


def test_every_documented_type_exists() -> None:
    gone = sorted(set(_documented()) - set(all_types()))
    assert gone == [], f"docs/EVENTS.md lists types the code does not register: {gone}"
