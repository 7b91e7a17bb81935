"""``berth tag history FEED/IMAGE[:TAG]``: what a tag pointed at over time, from the event log.

Calls ``GET /api/repositories/<name>/history`` of a running Berth (the api service reads the
repository's event stream; docs/ARCHITECTURE.md). Needs View on the feed: as the user of
``--user/--password`` (``BERTH_ADMIN_USER`` / ``BERTH_ADMIN_PASSWORD``), or anonymously with no
password (public feeds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from berth.auth_cli import AdminUser, DataDir, Url
from berth.runfile import resolve

if TYPE_CHECKING:
    import httpx

tag_app = typer.Typer(help="Tags: their history from the event log.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
Password = Annotated[
    str | None,
    typer.Option("--password", envvar="BERTH_ADMIN_PASSWORD", help="password (none: anonymous)"),
]


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


def fetch_history(
    client: httpx.Client, name: str, tag: str | None, limit: int
) -> tuple[list[dict[str, Any]], httpx.Response | None]:
    """Entries newest first, following ``Link: rel="next"`` until ``limit``; the failed
    response (status ≥ 400) instead, if any."""
    params: dict[str, str] = {"n": str(min(limit, 1000)), **({"tag": tag} if tag else {})}
    path: str | None = f"/api/repositories/{name}/history"
    entries: list[dict[str, Any]] = []
    while path and len(entries) < limit:
        response = client.get(path, params=params)
        if response.status_code >= 400:
            return entries, response
        entries.extend(response.json())
        path = response.links.get("next", {}).get("url")
        params = {}
    return entries[:limit], None


def _short(digest: str | None) -> str:
    return "" if not digest else digest.split(":", 1)[-1][:12]


def _print(entries: list[dict[str, Any]]) -> None:
    table = Table("when", "tag", "change", "from", "to", "by")
    for e in entries:
        moved_from = _short(e.get("previous_digest")) if e["type"] == "tag.updated" else _short(e["digest"])
        moved_to = _short(e["digest"]) if e["type"] == "tag.updated" else ""
        table.add_row(
            e["recorded_at"][:19].replace("T", " "),
            e.get("tag") or "",
            change_of(e),
            moved_from,
            moved_to,
            e.get("actor") or "",
        )
    out.print(table)


def _message(response: httpx.Response) -> str:
    try:
        return "; ".join(f"{e['code']}: {e['message']}" for e in response.json()["errors"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or str(response.status_code)


@tag_app.command("history")
def history(
    reference: Annotated[str, typer.Argument(metavar="FEED/IMAGE[:TAG]")],
    limit: Annotated[int, typer.Option(help="at most this many changes (newest first)", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON, one change a line")] = False,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: Password = None,
) -> None:
    """Show what TAG (or every tag of FEED/IMAGE) pointed at over time, who moved it and when."""
    import httpx

    from berth.token_auth import RegistryAuth

    name, tag = split_reference(reference)
    secret = password if password is not None else os.environ.get("BERTH_ADMIN_PASSWORD")
    auth = RegistryAuth(user, secret) if secret else RegistryAuth()
    base = (url or resolve(data_dir)[0]).rstrip("/")
    try:
        with httpx.Client(base_url=base, auth=auth, timeout=30) as client:
            entries, failed = fetch_history(client, name, tag, limit)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach Berth at {base}: {exc}[/red]")
        raise typer.Exit(2) from None
    if failed is not None:
        err.print(f"[red]{_message(failed)}[/red]")
        raise typer.Exit(1)
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry))
    elif entries:
        _print(entries)
    else:
        out.print("no tag changes recorded")
