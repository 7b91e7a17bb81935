"""``berth connector add|list|remove``: a feed's connectors to upstream registries, through the
admin API (``/api/feeds/<feed>/connectors``; docs/ARCHITECTURE.md, "Connectors").

The upstream password never goes on the command line (where ``ps`` and shell history would
show it): with ``--username`` it is asked for on a terminal (hidden) or read from standard
input with ``--password-stdin`` (``echo "$TOKEN" | berth connector add … --password-stdin``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from berth.cli_support import CliError, PasswordStdin, out, print_table, read_password
from berth.client import admin

app = typer.Typer(
    help="A feed's connectors: what a pull misses is fetched from other registries and cached."
    "\n\nExample: berth connector add hub https://registry-1.docker.io --namespace library",
    no_args_is_help=True,
)
Feed = Annotated[str, typer.Argument(metavar="FEED", hidden=True)]
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``"300"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"1d"`` → seconds. Raises ``typer.BadParameter``."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration such as 30s, 5m, 2h or 1d")
    return int(match[1]) * _UNITS[match[2]]


def upstream_password(username: str | None, from_stdin: bool) -> str | None:
    """The upstream password: asked for (hidden) or read from standard input (``--password-stdin``)
    when there is a username; none without one. Raises ``CliError`` (2) as ``read_password``."""
    if not username:
        if from_stdin:
            raise CliError("--password-stdin needs --username", 2)
        return None
    return read_password(f"password of {username} on the upstream", from_stdin=from_stdin)


@app.command("add")
def add(
    ctx: typer.Context,
    feed: Feed,
    url: Annotated[str, typer.Argument(metavar="URL", hidden=True)],
    username: Annotated[
        str | None, typer.Option(metavar="USER", help="upstream login (the password is asked for)")
    ] = None,
    password_stdin: PasswordStdin = False,
    namespace: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="put before single-component names upstream (Docker Hub: library)"),
    ] = None,
    tag_ttl: Annotated[
        str, typer.Option(metavar="DURATION", help="serve a cached tag this long before revalidating")
    ] = "5m",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", metavar="", help="pass content through, never store it")
    ] = False,
) -> None:
    """Add a connector to FEED: pulls of images FEED lacks are fetched from URL (after FEED's
    other connectors), stored and served. URL is a registry, optionally with a repository
    prefix (another Berth's feed: https://berth.example/FEED). The password of --username is
    asked for, or read with --password-stdin; never an argument.

    Example: berth connector add hub https://registry-1.docker.io --namespace library --tag-ttl 10m
    """
    body: dict[str, Any] = {
        "url": url, "username": username, "password": upstream_password(username, password_stdin),
        "namespace": namespace, "tag_ttl_seconds": parse_duration(tag_ttl), "cache": not no_cache,
    }  # fmt: skip
    added = admin(ctx).call("POST", f"/api/feeds/{feed}/connectors", json=body)
    out.print(f"connector {added['id']} added to {feed}: {added['url']} (position {added['position']})")


@app.command("list")
def list_(ctx: typer.Context, feed: Feed) -> None:
    """List FEED's connectors in the order they are tried (passwords are never shown).

    Example: berth connector list hub
    """
    rows = admin(ctx).call("GET", f"/api/feeds/{feed}/connectors")
    for row in rows:
        row["password"] = "set" if row["has_password"] else ""
        row["tag_ttl"] = f"{row['tag_ttl_seconds']}s"
    columns = [("#", "position"), ("id", "id"), ("url", "url"), ("username", "username"),
               ("password", "password"), ("namespace", "namespace"), ("tag ttl", "tag_ttl"),
               ("cache", "cache")]  # fmt: skip
    print_table(rows, columns)


@app.command("remove")
def remove(
    ctx: typer.Context,
    feed: Feed,
    which: Annotated[str, typer.Argument(metavar="URL|ID", hidden=True)],
) -> None:
    """Remove FEED's connector with that URL or id (what it cached stays in FEED).

    Example: berth connector remove hub https://registry-1.docker.io
    """
    from berth_common.connectors.model import UpstreamUrl

    try:
        wanted = {which, str(UpstreamUrl.parse(which))}
    except ValueError:
        wanted = {which}
    client = admin(ctx)
    found = [c for c in client.call("GET", f"/api/feeds/{feed}/connectors") if wanted & {c["id"], c["url"]}]
    if not found:
        raise CliError(f"feed {feed} has no connector {which}")
    for connector in found:
        client.call("DELETE", f"/api/feeds/{feed}/connectors/{connector['id']}")
        out.print(f"connector {connector['id']} ({connector['url']}) removed from {feed}")


def ensure_local_key(data_dir: Path) -> None:
    """``berth up``: make ``<data-dir>/secrets/connectors.key`` (0600) unless a key is configured,
    so connector passwords are encrypted at rest with no setup on one machine."""
    from berth_common.connectors.secrets import ensure_key_file, key_file_of
    from berth_common.settings import Settings

    settings = Settings(data_dir=data_dir)
    if not settings.connectors.key:
        ensure_key_file(key_file_of(settings))
