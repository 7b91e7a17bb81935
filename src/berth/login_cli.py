"""``berth login`` and ``berth logout``: keep a refresh token per Berth, like ``docker login``.

``login`` asks Berth's ``/v2/`` challenge for its token endpoint, logs in with the OAuth2
password grant and stores the refresh token (never the password) in ``berth.logins``' file
(0600); later commands use it (``berth.client``). ``logout`` gives the token up at the server
(RFC 7009 ``/auth/revoke``) and forgets it.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from berth import logins
from berth.cli_support import CliError, PasswordStdin, out, read_password
from berth.client import connection, password_login, revoke_login

Url = Annotated[
    str | None,
    typer.Argument(metavar="URL", hidden=True, show_default=False),
]


def login(
    ctx: typer.Context,
    url: Url = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", metavar="USER", help="who logs in (default: ask; admin)")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Log in to Berth at URL and keep a refresh token for the other commands (not the password).

    URL defaults to where the CLI finds Berth (berth --help). Asks for the user name and
    password on a terminal; with --password-stdin reads the password from standard input. The
    token lands in ~/.config/berth/logins.json (0600).

    Examples:

    \b
      berth login https://registry.example -u alice
      berth login http://127.0.0.1:5000 -u admin --password-stdin < admin-password.txt
    """
    target = logins.normalise_url(url) if url else connection(ctx).target().url
    name = username or _ask_username()
    password = read_password(f"Password of {name} at {target}", from_stdin=password_stdin)
    stored, is_admin = password_login(target, name, password)
    logins.store(stored)
    out.print(f"logged in to {target} as {name} (token kept in {logins.logins_file()})")
    if not is_admin:
        out.print(f"note: {name} does not hold the Admin privilege: the berth admin commands will be refused")


def _ask_username() -> str:
    default = os.environ.get("BERTH_AUTH__ADMIN_USER") or "admin"
    if not sys.stdin.isatty():
        return default
    name: str = typer.prompt("Username", default=default, err=True)
    return name


def logout(ctx: typer.Context, url: Url = None) -> None:
    """Forget the login for URL (default: the current one) and revoke its token at the server.

    Example: berth logout https://registry.example
    """
    target = logins.normalise_url(url) if url else _current_url()
    stored = logins.forget(target)
    if stored is None:
        raise CliError(f"not logged in to {target}", 1)
    if revoke_login(stored):
        out.print(f"logged out of {target} (its refresh token is revoked)")
    else:
        out.print(
            f"logged out of {target}; it could not be reached to revoke the token, which expires on its own"
        )


def _current_url() -> str:
    current = logins.current()
    if current is None:
        raise CliError(f"not logged in anywhere ({logins.logins_file()} holds no login)", 1)
    return current.url
