"""Every ``berth`` command's help (issue 13 §2): an example in each, no ``<str>``/``<bool>`` type
tags, and the connection options declared once on the root yet accepted after a command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from berth.cli import app, hoist_connection_options

TYPE_TAG = re.compile(r"<(str|bool|int|float|path|datetime|uuid|file|list\[[^>]*\])>")


def _root() -> TyperGroup:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return root


ROOT = _root()


def command_paths(group: Any = ROOT, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``group`` (groups and leaves), e.g. ``("feed", "create")``."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, TyperGroup):
            yield from command_paths(command, (*prefix, name))


PATHS = [(), *command_paths()]


def help_of(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_every_room() -> None:
    assert {p[0] for p in PATHS if p} >= {
        "up", "serve", "login", "logout", "feed", "user", "group", "key", "grant", "revoke", "auth",
        "events", "projections", "gc",
    }  # fmt: skip
    assert ("grant", "list") in PATHS and ("auth", "tokens", "revoke") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "berth")
def test_every_command_has_an_example(path: tuple[str, ...]) -> None:
    text = help_of(path)
    assert "Example" in text, text
    example = text.split("Example", 1)[1]
    assert "berth " in example, text


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "berth")
def test_help_lists_options_without_type_tags(path: tuple[str, ...]) -> None:
    text = help_of(path)
    assert not TYPE_TAG.search(text), text


def options(command: Any = ROOT) -> Iterator[tuple[str, Any]]:
    """``(option string, parameter)`` of every option of ``command`` and the commands under it."""
    for param in command.params:
        for opt in (*param.opts, *param.secondary_opts):
            yield opt, param
    for sub in getattr(command, "commands", {}).values():
        yield from options(sub)


def test_connection_options_are_declared_once_on_the_root() -> None:
    urls = [param for opt, param in options() if opt == "--url"]
    assert urls == [ROOT.params[0]]  # the root's; no command repeats it
    assert "--url URL" in help_of(()) and "--data-dir DIR" in help_of(())


def test_no_option_takes_a_password_value() -> None:
    """Passwords never on the command line (shell history, ``ps``): only ``--password-stdin``."""
    for opt, param in options():
        if "password" in opt:
            assert opt == "--password-stdin" and param.is_flag, opt


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["feed", "list", "--url", "U"], ["--url", "U", "feed", "list"]),
        (["feed", "list", "--url=U"], ["--url", "U", "feed", "list"]),
        (
            ["events", "tail", "--last", "0", "--data-dir", "D"],
            ["--data-dir", "D", "events", "tail", "--last", "0"],
        ),
        (["--url", "U", "feed", "list"], ["--url", "U", "feed", "list"]),
        (["grant", "user:bob", "view", "--url", "U"], ["--url", "U", "grant", "user:bob", "view"]),
        (["up", "--data-dir", "D"], ["up", "--data-dir", "D"]),  # up's own --data-dir
        (["feed", "create", "--", "--url"], ["feed", "create", "--", "--url"]),
    ],
)
def test_connection_options_after_a_command_move_to_the_root(given: list[str], parsed: list[str]) -> None:
    assert hoist_connection_options(ROOT, given) == parsed


def test_grant_without_a_subcommand_adds_a_rule() -> None:
    """``berth grant PRINCIPAL PRIVILEGE`` (the form from before ``grant list``) still parses:
    it reaches ``grant add``, which here fails only for want of a Berth to talk to."""
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "grant", "user:bob", "view"])
    assert result.exit_code == 2 and "cannot reach Berth at http://127.0.0.1:9 (--url)" in result.output
    bad = CliRunner().invoke(app, ["grant", "nobody", "view"])
    assert bad.exit_code == 2 and "PRINCIPAL is user:NAME" in bad.output
