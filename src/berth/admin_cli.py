"""``berth feed …``: manage feeds through the admin API of a running Berth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from berth.auth_cli import admin_auth
from berth.runfile import resolve

feed_app = typer.Typer(help="Create, list and delete feeds.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="Berth's URL (default: BERTH_URL, run.json)")]
DataDir = Annotated[Path, typer.Option("--data-dir", envvar="BERTH_DATA_DIR")]


def _call(method: str, url: str | None, data_dir: Path, path: str, **kwargs: Any) -> httpx.Response:
    base = url or resolve(data_dir)[0]
    try:
        response = httpx.request(method, base.rstrip("/") + path, timeout=30,
                                 auth=admin_auth(), **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach Berth at {base}: {exc}[/red]")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            errors = response.json().get("errors", [])
            message = "; ".join(f"{e['code']}: {e['message']}" for e in errors)
        except ValueError:
            message = response.text[:200]
        err.print(f"[red]{message or response.status_code}[/red]")
        raise typer.Exit(1)
    return response


@feed_app.command("create")
def create(name: str, public: Annotated[bool, typer.Option(help="anonymous users may pull")] = False,
           description: str = "", url: Url = None, data_dir: DataDir = Path("berth-data")) -> None:
    """Create feed NAME (images are then HOST/NAME/IMAGE:TAG)."""
    _call("POST", url, data_dir, "/api/feeds",
          json={"name": name, "public": public, "description": description})
    out.print(f"feed {name} created")


@feed_app.command("list")
def list_(url: Url = None, data_dir: DataDir = Path("berth-data")) -> None:
    """List feeds."""
    feeds = _call("GET", url, data_dir, "/api/feeds").json()
    table = Table("name", "public", "repositories", "description")
    for feed in feeds:
        table.add_row(feed["name"], "yes" if feed["public"] else "no", str(feed["repositories"]),
                      feed["description"])
    out.print(table)


@feed_app.command("delete")
def delete(name: str, url: Url = None, data_dir: DataDir = Path("berth-data")) -> None:
    """Delete feed NAME and all its repositories."""
    _call("DELETE", url, data_dir, f"/api/feeds/{name}")
    out.print(f"feed {name} deleted")
