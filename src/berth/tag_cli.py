"""``berth tag history FEED/IMAGE[:TAG]``: what a tag pointed at over time, from the event log.

Calls ``GET /api/repositories/<name>/history`` of a running Berth (the api service reads the
repository's event stream; docs/ARCHITECTURE.md) through the CLI's one client
(``berth.client``). Needs View on the feed: as ``BERTH_ADMIN_PASSWORD``'s user or the stored
login, or anonymously without either (public feeds).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from berth.cli_support import out, print_table
from berth.client import connection

tag_app = typer.Typer(
    help="Tags: their history from the event log.\n\nExample: berth tag history dmc/app:latest",
    no_args_is_help=True,
)


def split_reference(reference: str) -> tuple[str, str | None]:
    """``"dmc/app:v1"`` → ``("dmc/app", "v1")``; ``"dmc/app"`` → ``("dmc/app", None)``.

    A ``:`` counts only in the last path component (``host:port`` never appears here).
    Raises ``typer.BadParameter`` without a feed and an image.
    """
    head, _, last = reference.rpartition("/")
    name, tag = (reference, None)
    if ":" in last:
        image, _, tag = last.partition(":")
        name = f"{head}/{image}" if head else image
    if "/" not in name or not all(name.split("/")) or tag == "":
        raise typer.BadParameter(f"{reference!r} is not FEED/IMAGE[:TAG]")
    return name, tag


def change_of(entry: dict[str, Any]) -> str:
    """How a history entry reads: ``created``, ``moved``, ``deleted`` or ``manifest deleted``."""
    if entry["type"] == "tag.updated":
        return "moved" if entry.get("previous_digest") else "created"
    return "deleted" if entry["type"] == "tag.deleted" else "manifest deleted"


def _short(digest: str | None) -> str:
    return "" if not digest else digest.split(":", 1)[-1][:12]


def _print(entries: list[dict[str, Any]]) -> None:
    rows = []
    for e in entries:
        moved = e["type"] == "tag.updated"
        rows.append(
            {
                "when": e["recorded_at"][:19].replace("T", " "),
                "tag": e.get("tag"),
                "change": change_of(e),
                "from": _short(e.get("previous_digest")) if moved else _short(e["digest"]),
                "to": _short(e["digest"]) if moved else "",
                "by": e.get("actor"),
            }
        )
    print_table(rows, [(c, c) for c in ("when", "tag", "change", "from", "to", "by")])


@tag_app.command("history")
def history(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="FEED/IMAGE[:TAG]", hidden=True)],
    limit: Annotated[
        int, typer.Option(metavar="N", help="at most this many changes (newest first)", min=1)
    ] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="print JSON, one change a line")
    ] = False,
) -> None:
    """Show what TAG (or every tag of FEED/IMAGE) pointed at over time, who moved it and when.

    Needs View on the feed (anonymous for a public feed: without BERTH_ADMIN_PASSWORD or a
    login, the CLI asks nothing and calls anonymously).

    Examples:

    \b
      berth tag history dmc/app:latest
      berth tag history dmc/app --json --limit 20
    """
    name, tag = split_reference(reference)
    client = connection(ctx).client(anonymous=True)
    params = {"n": str(min(limit, 1000)), "tag": tag}
    entries = client.pages(f"/api/repositories/{name}/history", params=params, limit=limit)
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry))
    elif entries:
        _print(entries)
    else:
        out.print("no tag changes recorded")
