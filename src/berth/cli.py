"""The ``berth`` command line (typer): the root command, its connection options, the rooms.

Each room is one module with one ``typer.Typer`` (or a few commands) named for what it does:

=====================  ===========================================================
``server_cli``         ``berth up``, ``berth serve`` (run Berth)
``login_cli``          ``berth login``, ``berth logout`` (stored logins)
``feed_cli``           ``berth feed …``
``connector_cli``      ``berth connector …`` (a feed's connectors to upstream registries)
``tag_cli``            ``berth tag history``
``identity_cli``       ``berth user …``, ``berth group …``, ``berth key …``
``access_cli``         ``berth grant [list]``, ``berth revoke``
``auth_cli``           ``berth auth rotate-key``, ``berth auth tokens …``
``gc_cli``             ``berth gc …``
``ops_cli``            ``berth events …``, ``berth projections …``
=====================  ===========================================================

A new room is a module ``berth/<room>_cli.py`` whose commands take ``ctx: typer.Context`` and
call ``berth.client.admin(ctx).call(METHOD, "/api/…")``, added to :data:`ROOMS` below; a
new command of an existing room goes into that module. Every command's help ends with an
``Example:`` line (``tests/unit/test_cli_help.py`` checks). The connection options
(``--url``, ``--data-dir``) are declared once, here; they are also accepted after a command
(``berth feed list --url URL``), unless that command has an option of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from berth import (
    access_cli,
    auth_cli,
    connector_cli,
    feed_cli,
    gc_cli,
    identity_cli,
    login_cli,
    migrate_cli,
    ops_cli,
    server_cli,
    tag_cli,
)
from berth.cli_support import CliError, err
from berth.client import Connection

CONNECTION_OPTIONS = frozenset({"--url", "--data-dir"})


class BerthGroup(TyperGroup):
    """The root group: connection options anywhere on the line; :class:`CliError` as one line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Move connection options given after a command in front of it (see module docstring)."""
        return super().parse_args(ctx, hoist_connection_options(self, args))

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a ``CliError`` is printed as ``berth: MESSAGE`` and exits with its code."""
        try:
            return super().invoke(ctx)
        except CliError as exc:
            err.print(f"berth: {exc.message}", style="red", soft_wrap=True, markup=False)
            raise typer.Exit(exc.exit_code) from None


def hoist_connection_options(root: TyperGroup, args: list[str]) -> list[str]:
    """``args`` with every ``--url X`` / ``--data-dir X`` (or ``--url=X``) that follows a command
    name moved to the front, where the root's callback reads it — except for a command that
    declares that option itself (``berth up --data-dir``). Stops at ``--``."""
    front: list[str] = []
    rest: list[str] = []
    command: Any = root
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest += args[i:]
            break
        name, equals, value = token.partition("=")
        hoist = command is not root and name in CONNECTION_OPTIONS and not _declares(command, name)
        if hoist and (equals or i + 1 < len(args)):
            front += [name, value if equals else args[i + 1]]
            i += 1 if equals else 2
            continue
        if isinstance(command, TyperGroup) and token in command.commands:
            command = command.commands[token]
        rest.append(token)
        i += 1
    return front + rest


def _declares(command: Any, option: str) -> bool:
    return any(option in (*p.opts, *p.secondary_opts) for p in command.params)


app = typer.Typer(
    cls=BerthGroup,
    rich_markup_mode=None,  # click's plain help: paragraphs re-wrapped, no type tags on flags
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help", "-h"]},
)


@app.callback()
def berth(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="BERTH_URL",
            metavar="URL",
            help="Berth's URL, e.g. https://registry.example (default: the last berth login, else"
            " ./berth-data/run.json of a berth up here, else http://127.0.0.1:5000)",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="BERTH_DATA_DIR",
            metavar="DIR",
            help="the data dir of a berth up on this machine: its run.json says where it runs"
            " (and, for gc, events and projections, its database and NATS)",
        ),
    ] = None,
) -> None:
    """Berth: a private Docker/OCI registry with feeds (images are HOST/FEED/IMAGE:TAG).

    The commands that manage a running Berth find it by --url (or BERTH_URL), else the last
    berth login, else the berth up started in this folder (./berth-data). They log in with
    the stored login, or BERTH_ADMIN_PASSWORD (user BERTH_AUTH__ADMIN_USER, default admin), or ask.

    Examples:

    \b
      berth login https://registry.example
      berth feed list
      BERTH_URL=http://127.0.0.1:5000 berth user list
    """
    source = ctx.get_parameter_source("url")
    from_env = source is not None and source.name == "ENVIRONMENT"
    ctx.obj = Connection(url=url, url_source="BERTH_URL" if from_env else "--url", data_dir=data_dir)


ROOMS: list[tuple[str, typer.Typer]] = [
    ("feed", feed_cli.app),
    ("connector", connector_cli.app),
    ("tag", tag_cli.tag_app),
    ("user", identity_cli.user_app),
    ("group", identity_cli.group_app),
    ("key", identity_cli.key_app),
    ("grant", access_cli.grant_app),
    ("auth", auth_cli.app),
    ("events", ops_cli.events_app),
    ("projections", ops_cli.projections_app),
    ("gc", gc_cli.gc_app),
]
app.command("up")(server_cli.up)
app.command("serve")(server_cli.serve)
app.command("login")(login_cli.login)
app.command("logout")(login_cli.logout)
for _name, _room in ROOMS:
    app.add_typer(_room, name=_name)
app.command("revoke")(access_cli.revoke)
app.command("migrate")(migrate_cli.migrate)


def main() -> None:
    """Entry point of the ``berth`` command."""
    app()
