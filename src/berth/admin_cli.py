"""``berth feed …``: manage feeds through the admin API of a running Berth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from berth.auth_cli import AdminPassword, AdminUser, DataDir, Url, call

feed_app = typer.Typer(help="Create, list, update and delete feeds.", no_args_is_help=True)
AllowSparse = Annotated[
    bool,
    typer.Option(help="manifests may reference blobs and child manifests that were not pushed (sparse)"),
]
out = Console()


@feed_app.command("create")
def create(
    name: str,
    public: Annotated[bool, typer.Option(help="anonymous users may pull")] = False,
    allow_sparse: AllowSparse = False,
    description: str = "",
    store: Annotated[str, typer.Option(help="the configured store holding its blobs")] = "default",
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
        json={
            "name": name,
            "public": public,
            "description": description,
            "allow_sparse": allow_sparse,
            "store": store,
        },
    )
    out.print(f"feed {name} created")


@feed_app.command("update")
def update(
    name: str,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="anonymous users may pull")
    ] = None,
    allow_sparse: Annotated[
        bool | None,
        typer.Option("--allow-sparse/--no-sparse", help="accept manifests referencing content not pushed"),
    ] = None,
    description: str | None = None,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Change settings of feed NAME; options not given stay as they are.

    Example: berth feed update mirror --allow-sparse
    """
    changes = {"public": public, "allow_sparse": allow_sparse, "description": description}
    body = {k: v for k, v in changes.items() if v is not None}
    call("PATCH", f"/api/feeds/{name}", url=url, data_dir=data_dir, user=user, password=password, json=body)
    out.print(f"feed {name} updated")


@feed_app.command("list")
def list_(
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """List feeds."""
    feeds: list[dict[str, object]] = []
    path: str | None = "/api/feeds?n=1000"
    while path:  # the listing is paginated (Link: rel="next")
        response = call("GET", path, url=url, data_dir=data_dir, user=user, password=password)
        feeds.extend(response.json())
        path = response.links.get("next", {}).get("url")
    table = Table("name", "public", "sparse", "repositories", "description")
    for feed in feeds:
        yes = {True: "yes", False: "no"}
        table.add_row(
            str(feed["name"]),
            yes[bool(feed["public"])],
            yes[bool(feed.get("allow_sparse"))],
            str(feed["repositories"]),
            str(feed["description"]),
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
