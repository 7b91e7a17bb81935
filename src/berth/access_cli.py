"""``berth grant …`` and ``berth revoke``: what principals may do on feeds (``/api/privileges``).

``berth grant PRINCIPAL PRIVILEGE`` adds a rule (as before ``grant list`` existed: a first word
that is no subcommand means ``grant add``); ``berth grant list`` shows the rules with the ids
``berth revoke`` takes. The model (principals, privileges, which rule wins) is docs/SECURITY.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from berth.cli_support import out, print_table
from berth.client import admin

PSEUDO = ("everyone", "authenticated", "anonymous")
PRINCIPAL_HELP = "user:NAME | group:NAME | key:ID | everyone | authenticated | anonymous"


class GrantGroup(TyperGroup):
    """``berth grant``: subcommands ``add`` (the default) and ``list``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """``berth grant user:bob view`` is ``berth grant add user:bob view``."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


grant_app = typer.Typer(
    cls=GrantGroup,
    help="Grant privileges on feeds (berth grant PRINCIPAL PRIVILEGE), list the rules.\n\n"
    "Example: berth grant user:alice add --feed dmc",
    no_args_is_help=True,
)
Principal = Annotated[str, typer.Argument(metavar="PRINCIPAL", hidden=True)]
Feed = Annotated[str | None, typer.Option(metavar="FEED", help="one feed (default: all feeds)")]


def parse_principal(principal: str) -> tuple[str, str]:
    """``(kind, name)`` of ``user:NAME``, ``group:NAME``, ``key:ID`` or a pseudo-principal
    (name ``""``). Raises ``typer.BadParameter`` for anything else."""
    kind, _, name = principal.partition(":")
    if kind in PSEUDO and not name:
        return kind, ""
    if kind not in ("user", "group", "key") or not name:
        raise typer.BadParameter(f"PRINCIPAL is {PRINCIPAL_HELP}, not {principal!r}")
    return kind, name


def show_principal(kind: str, name: str) -> str:
    """``user:bob`` / ``everyone``: how a rule's principal is written on the command line."""
    return kind if kind in PSEUDO else f"{kind}:{name}"


@grant_app.command("add")
def grant(
    ctx: typer.Context,
    principal: Principal,
    privilege: Annotated[str, typer.Argument(metavar="PRIVILEGE", hidden=True)],
    feed: Feed = None,
    deny: Annotated[
        bool, typer.Option("--deny", metavar="", help="a restriction instead of a grant")
    ] = False,
) -> None:
    """Grant (or with --deny restrict) PRIVILEGE on --feed (default all feeds) to PRINCIPAL.

    PRINCIPAL is user:NAME, group:NAME, key:ID, everyone, authenticated or anonymous; PRIVILEGE
    is view, add, overwrite, delete, manage or admin (docs/SECURITY.md says what each allows).

    Examples:

    \b
      berth grant user:alice add --feed dmc
      berth grant everyone view --feed public-images
      berth grant group:contractors delete --feed dmc --deny
    """
    kind, name = parse_principal(principal)
    effect = "deny" if deny else "grant"
    body = {"principal_kind": kind, "principal": name, "privilege": privilege, "feed": feed, "effect": effect}
    rule = admin(ctx).call("POST", "/api/privileges", json=body)
    out.print(f"rule {rule['rule_id']}: {effect} {privilege} on {feed or 'all feeds'} to {principal}")


@grant_app.command("list")
def grant_list(
    ctx: typer.Context,
    feed: Annotated[
        str | None,
        typer.Option(metavar="FEED", help="only rules that apply to FEED (its own and all-feeds ones)"),
    ] = None,
    principal: Annotated[
        str | None, typer.Option(metavar="PRINCIPAL", help=f"only rules of {PRINCIPAL_HELP}")
    ] = None,
) -> None:
    """List grants and restrictions with their ids (berth revoke ID removes one).

    Example: berth grant list --feed dmc --principal user:alice
    """
    if principal is not None:
        principal = show_principal(*parse_principal(principal))
    rules = admin(ctx).call("GET", "/api/privileges", params={"feed": feed, "principal": principal})
    for rule in rules:
        rule["who"] = show_principal(rule["principal_kind"], rule["principal"])
        rule["on"] = rule["feed"] or "all feeds"
    columns = [
        ("id", "rule_id"),
        ("principal", "who"),
        ("privilege", "privilege"),
        ("feed", "on"),
        ("effect", "effect"),
    ]
    print_table(rules, columns)


def revoke(
    ctx: typer.Context,
    rule_ids: Annotated[
        list[str],
        typer.Argument(metavar="ID", hidden=True),
    ],
) -> None:
    """Remove grants or restrictions by their rule ids (as berth grant and berth grant list print them).

    Example: berth revoke r-3f9a1c0b2d4e
    """
    client = admin(ctx)
    for rule_id in (r.rstrip(":") for r in rule_ids):  # "rule r-…:" as berth grant prints it
        client.call("DELETE", f"/api/privileges/{rule_id}")
        out.print(f"rule {rule_id} removed")
