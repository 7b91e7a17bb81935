"""``berth feed …``: create, list, update and delete feeds through the admin API (``/api/feeds``)."""

from __future__ import annotations

from typing import Annotated

import typer

from berth.cli_support import out, print_table
from berth.client import admin

app = typer.Typer(
    help="Create, list, update and delete feeds.\n\nExample: berth feed create dmc --public",
    no_args_is_help=True,
)
Name = Annotated[str, typer.Argument(metavar="NAME", hidden=True)]
Description = Annotated[str | None, typer.Option(metavar="TEXT", help="what the feed is for")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    public: Annotated[bool, typer.Option("--public", metavar="", help="anonymous users may pull")] = False,
    allow_sparse: Annotated[
        bool,
        typer.Option(
            "--allow-sparse",
            metavar="",
            help="manifests may reference blobs and child manifests that were not pushed (sparse)",
        ),
    ] = False,
    description: Description = None,
    store: Annotated[
        str,
        typer.Option("--store", metavar="STORE", help="the configured store that holds its blobs (fixed)"),
    ] = "default",
) -> None:
    """Create feed NAME (images are then HOST/NAME/IMAGE:TAG) on a configured store.

    Example: berth feed create dmc --public --description "base images" --store default
    """
    body = {"name": name, "public": public, "description": description or "", "allow_sparse": allow_sparse}
    body["store"] = store
    admin(ctx).call("POST", "/api/feeds", json=body)
    out.print(f"feed {name} created")


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    public: Annotated[
        bool | None, typer.Option("--public/--private", metavar="", help="anonymous users may pull")
    ] = None,
    allow_sparse: Annotated[
        bool | None,
        typer.Option(
            "--allow-sparse/--no-sparse", metavar="", help="accept manifests referencing content not pushed"
        ),
    ] = None,
    description: Description = None,
) -> None:
    """Change settings of feed NAME; options not given stay as they are.

    Example: berth feed update mirror --allow-sparse
    """
    changes = {"public": public, "allow_sparse": allow_sparse, "description": description}
    body = {k: v for k, v in changes.items() if v is not None}
    admin(ctx).call("PATCH", f"/api/feeds/{name}", json=body)
    out.print(f"feed {name} updated")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List feeds.

    Example: berth feed list
    """
    feeds = admin(ctx).pages("/api/feeds", params={"n": 1000})  # paginated (Link: rel="next")
    for feed in feeds:
        feed["allow_sparse"] = bool(feed.get("allow_sparse"))
    columns = [
        ("name", "name"),
        ("public", "public"),
        ("sparse", "allow_sparse"),
        ("store", "store"),
        ("repositories", "repositories"),
        ("description", "description"),
    ]
    print_table(feeds, columns)


@app.command("delete")
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete feed NAME and all its repositories.

    Example: berth feed delete scratch
    """
    admin(ctx).call("DELETE", f"/api/feeds/{name}")
    out.print(f"feed {name} deleted")
