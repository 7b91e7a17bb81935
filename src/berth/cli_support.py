"""What every ``berth`` command module shares: the error it raises, output, passwords, options.

A command raises :class:`CliError`; the root group (``berth.cli``) prints it as one line on
stderr and exits with its code — never a traceback. Passwords are never taken from the command
line (shell history, ``ps``): :func:`read_password` prompts on a terminal (hidden, confirmed for
new ones) or reads ``--password-stdin``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Piped output is not cut to 80 columns: tables keep whole cells for grep and scripts.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", metavar="", help="read the password from standard input"),
]


class CliError(Exception):
    """A failure reported as one line; ``exit_code`` 1 when Berth refused the request, 2 when
    the CLI could not talk to Berth or lacks something it needs (URL, credentials, a terminal)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def read_password(prompt: str, *, from_stdin: bool, confirm: bool = False) -> str:
    """A password: all of standard input with ``from_stdin`` (one trailing newline dropped),
    else a hidden prompt on the terminal (asked twice with ``confirm``).

    Raises:
        CliError: (2) empty input, or no terminal to ask and no ``--password-stdin``.
    """
    if from_stdin:
        piped = sys.stdin.read().removesuffix("\n").removesuffix("\r")
        if not piped:
            raise CliError("--password-stdin: standard input held no password", 2)
        return piped
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password: pipe it in with --password-stdin", 2)
    typed: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    return typed


def print_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as a table of ``(heading, key)`` columns, without borders (columns of
    words, like kubectl's); ``None`` shows as empty, lists joined by commas, booleans as yes/no,
    times to the minute (UTC)."""
    table = Table(*(heading.upper() for heading, _ in columns), box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for _, key in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    text = str(value)
    if len(text) >= 20 and text[4] == "-" and text[10] == "T":  # ISO 8601 time from the API
        return text[:16].replace("T", " ")
    return text


def quiet_logging() -> None:
    """Only warnings and errors of the code a command runs (GC, rebuilds), on stderr: the
    command's own output is its result lines, not structured log lines on top of them."""
    import logging

    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    logging.basicConfig(level=logging.WARNING)
