"""``berth feed …``: manage feeds through the admin API of a running Berth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from berth.auth_cli import AdminPassword, AdminUser, DataDir, Url, call

feed_app = typer.Typer(help="Create, list and delete feeds.", no_args_is_help=True)
out = Console()


@feed_app.command("create")
def create(
    name: str,
    public: Annotated[bool, typer.Option(help="anonymous users may pull")] = False,
    description: str = "",
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Create feed NAME (images are then HOST/NAME/IMAGE:TAG)."""
    call(
        "POST",
        "/api/feeds",
        url=url,
        data_dir=data_dir,
        user=user,
        password=password,
        json={"name": name, "public": public, "description": description},
    )
    out.print(f"feed {name} created")


@feed_app.command("list")
def list_(
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """List feeds."""
    feeds = call("GET", "/api/feeds", url=url, data_dir=data_dir, user=user, password=password).json()
    table = Table("name", "public", "repositories", "description")
    for feed in feeds:
        table.add_row(
            feed["name"], "yes" if feed["public"] else "no", str(feed["repositories"]), feed["description"]
        )
    out.print(table)


@feed_app.command("delete")
def delete(
    name: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Delete feed NAME and all its repositories."""
    call("DELETE", f"/api/feeds/{name}", url=url, data_dir=data_dir, user=user, password=password)
    out.print(f"feed {name} deleted")
