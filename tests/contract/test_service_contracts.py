"""Services read each other's state only through what the owner publishes.

Every service owns one PostgreSQL schema and declares in its ``contracts`` module the views
and functions other services may use (``berth_common.contracts``). This test reads the SQL of
every service and of ``berth_common`` — ``.sql`` migrations, and the string literals of ``.py``
files that hold SQL — and fails on any reference to another schema outside those names.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import TypeGuard

import pytest

from berth_common.contracts import EVENTSTORE, Contract

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "blob", "auth", "gc", "ui")
SCHEMAS = ("api", "blob", "auth", "gc", "eventstore")
_REFERENCE = re.compile(rf"\b({'|'.join(SCHEMAS)})\.([a-z_][a-z0-9_]*)\b")
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|CREATE|ALTER|TRUNCATE|LOCK TABLE)\b")


def contracts() -> dict[str, Contract]:
    """Schema → the contract of its owner."""
    found = {"eventstore": EVENTSTORE}
    for service in SERVICES:
        if service == "ui":  # owns no schema
            continue
        contract = importlib.import_module(f"berth_{service}.contracts").CONTRACT
        assert contract.schema == service
        found[contract.schema] = contract
    return found


def sql_texts(package: Path) -> list[tuple[str, str]]:
    """``(file:line, text)`` of every piece of SQL under ``package``."""
    texts: list[tuple[str, str]] = []
    for path in sorted(package.rglob("*.sql")):
        texts.append((str(path.relative_to(ROOT)), path.read_text()))
    for path in sorted(package.rglob("*.py")):
        if path.name == "contracts.py":  # the owner's description of its promises, not SQL
            continue
        tree = ast.parse(path.read_text())
        prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings
        strings = [(n.lineno, str(n.value)) for n in ast.walk(tree) if _is_text(n) and id(n) not in prose]
        texts += [(f"{path.relative_to(ROOT)}:{line}", text) for line, text in strings if _SQL.search(text)]
    return texts


def _is_text(node: ast.AST) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def foreign_references(own_schema: str | None, texts: list[tuple[str, str]]) -> list[str]:
    """References in ``texts`` to another schema's names that its owner does not publish."""
    published = contracts()
    wrong = []
    for where, text in texts:
        for schema, name in _REFERENCE.findall(text):
            qualified = f"{schema}.{name}"
            if schema != own_schema and qualified not in published[schema].names():
                wrong.append(f"{where}: {qualified}")
    return sorted(set(wrong))


def _packages() -> list[tuple[str | None, Path]]:
    found: list[tuple[str | None, Path]] = [("eventstore", ROOT / "libs/common/src/berth_common")]
    for service in SERVICES:
        found.append((None if service == "ui" else service, ROOT / f"services/{service}/src/berth_{service}"))
    return found  # src/berth (the CLI and the all-in-one wiring) is no service: not scanned


@pytest.mark.parametrize(("schema", "package"), _packages(), ids=lambda v: getattr(v, "name", str(v)))
def test_sql_touches_other_schemas_only_through_published_names(schema: str | None, package: Path) -> None:
    texts = sql_texts(package)
    assert texts or package.name == "berth_ui", f"no SQL found under {package}: the scan is broken"
    assert foreign_references(schema, texts) == []


def test_the_scan_catches_a_private_table_of_another_service() -> None:
    texts = [
        ("x.py:1", "SELECT digest FROM blob.links WHERE repository = $1"),
        ("x.py:2", "SELECT name FROM api.v_feeds"),
        ("x.sql", "UPDATE api.feeds SET public = true"),
    ]
    assert foreign_references("blob", texts) == ["x.sql: api.feeds"]
    assert foreign_references("auth", texts) == ["x.py:1: blob.links", "x.sql: api.feeds"]


def test_every_published_view_is_defined_by_its_owners_migrations() -> None:
    for schema, contract in contracts().items():
        if schema == "eventstore":
            folder = ROOT / "libs/common/src/berth_common/eventstore/migrations"
        else:
            folder = ROOT / f"services/{schema}/src/berth_{schema}/migrations"
        sql = "\n".join(p.read_text() for p in sorted(folder.glob("*.sql")))
        for item in contract.published:
            kind = "TABLE" if item.name == "eventstore.events" else item.kind.upper()
            assert re.search(rf"CREATE (OR REPLACE )?{kind} {re.escape(item.name)}\b", sql), item.name
            assert item.purpose and item.readers, item.name


async def test_every_published_view_has_the_columns_its_contract_names() -> None:
    """On a database with every migration: each published view's columns (a function's
    argument names), in order, are the ones its owner's contract declares (a column renamed or
    dropped breaks readers)."""
    from berth.allinone import SERVICES as SPECS
    from berth_common.db import apply_migrations
    from tests.support.databases import eventstore_pool

    async with eventstore_pool() as pool:
        for spec in SPECS:
            await apply_migrations(pool, spec.migrations(), wait=False)
        for contract in contracts().values():
            for item in contract.published:
                schema, name = item.name.split(".")
                if item.kind == "function":  # its argument names, in order
                    names = await pool.fetchval(
                        "SELECT p.proargnames FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                        " WHERE n.nspname = $1 AND p.proname = $2",
                        schema,
                        name,
                    )
                    assert tuple(names or ()) == item.columns, item.name
                    continue
                rows = await pool.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    schema,
                    name,
                )
                assert tuple(r["column_name"] for r in rows) == item.columns, item.name
