"""``berth user|group|key …``: who may log in — users, groups and API keys (``/api/users``,
``/api/groups``, ``/api/keys``). What they may do is ``berth grant`` (``access_cli``).

New passwords are never command-line arguments: a hidden, confirmed prompt on a terminal, or
``--password-stdin``; the server's password policy (``auth.min_password_length``) decides.
"""

from __future__ import annotations

from typing import Annotated

import typer

from berth.cli_support import PasswordStdin, out, print_table, read_password
from berth.client import admin

user_app = typer.Typer(
    help="Users: add, passwd, list, disable.\n\nExample: berth user add alice --email alice@example.com",
    no_args_is_help=True,
)
group_app = typer.Typer(
    help="Groups: create, add, remove, list.\n\nExample: berth group add developers alice",
    no_args_is_help=True,
)
key_app = typer.Typer(
    help="API keys (docker login -u api -p KEY): create, list, revoke.\n\n"
    "Example: berth key create --owner ci --feed dmc --privilege add",
    no_args_is_help=True,
)
UserName = Annotated[str, typer.Argument(metavar="USER", hidden=True)]
GroupName = Annotated[str, typer.Argument(metavar="GROUP", hidden=True)]


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: UserName,
    email: Annotated[str, typer.Option(metavar="ADDRESS", help="the user's e-mail address")] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create user USER; asks for the password (twice), or reads it with --password-stdin.

    Examples:

    \b
      berth user add alice --email alice@example.com
      printf %s "$PASSWORD" | berth user add ci --password-stdin
    """
    client = admin(ctx)  # the admin's credentials first: a prompt for them comes before this one
    password = read_password(f"Password for {name}", from_stdin=password_stdin, confirm=True)
    client.call("POST", "/api/users", json={"name": name, "password": password, "email": email})
    out.print(f"user {name} created")


@user_app.command("passwd")
def user_passwd(ctx: typer.Context, name: UserName, password_stdin: PasswordStdin = False) -> None:
    """Set USER's password (their refresh tokens are revoked); asks twice, or --password-stdin.

    Examples:

    \b
      berth user passwd admin
      printf %s "$NEW_PASSWORD" | berth user passwd ci --password-stdin
    """
    client = admin(ctx)
    password = read_password(f"New password for {name}", from_stdin=password_stdin, confirm=True)
    client.call("PUT", f"/api/users/{name}/password", json={"password": password})
    out.print(f"password of {name} changed")


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users with their groups.

    Example: berth user list
    """
    rows = admin(ctx).call("GET", "/api/users")
    print_table(rows, [("name", "name"), ("email", "email"), ("disabled", "disabled"), ("groups", "groups")])


@user_app.command("disable")
def user_disable(ctx: typer.Context, name: UserName) -> None:
    """Disable USER: no more logins; their refresh tokens are revoked.

    Example: berth user disable mallory
    """
    admin(ctx).call("POST", f"/api/users/{name}/disable")
    out.print(f"user {name} disabled")


@group_app.command("create")
def group_create(ctx: typer.Context, name: GroupName) -> None:
    """Create group GROUP.

    Example: berth group create developers
    """
    admin(ctx).call("POST", "/api/groups", json={"name": name})
    out.print(f"group {name} created")


@group_app.command("add")
def group_add(ctx: typer.Context, group: GroupName, member: UserName) -> None:
    """Add USER to GROUP.

    Example: berth group add developers alice
    """
    admin(ctx).call("POST", f"/api/groups/{group}/members", json={"user": member})
    out.print(f"{member} added to {group}")


@group_app.command("remove")
def group_remove(ctx: typer.Context, group: GroupName, member: UserName) -> None:
    """Remove USER from GROUP.

    Example: berth group remove developers alice
    """
    admin(ctx).call("DELETE", f"/api/groups/{group}/members/{member}")
    out.print(f"{member} removed from {group}")


@group_app.command("list")
def group_list(ctx: typer.Context) -> None:
    """List groups and their members.

    Example: berth group list
    """
    print_table(admin(ctx).call("GET", "/api/groups"), [("name", "name"), ("members", "members")])


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option(metavar="USER", help="the user the key acts for")] = None,
    feed: Annotated[list[str] | None, typer.Option(metavar="FEED", help="limit to feeds (repeat)")] = None,
    privilege: Annotated[
        list[str] | None, typer.Option(metavar="PRIVILEGE", help="ceiling (repeat; default view)")
    ] = None,
    expires: Annotated[str | None, typer.Option(metavar="TIME", help="ISO 8601 expiry")] = None,
    description: Annotated[str, typer.Option(metavar="TEXT", help="what the key is for")] = "",
) -> None:
    """Create an API key and print it once (log in with user "api" and the key as password).

    Example:

    \b
      berth key create --owner ci --feed dmc --privilege add --expires 2027-01-01T00:00:00Z
    """
    body = {
        "owner": owner,
        "feeds": feed or None,
        "privileges": privilege or ["view"],
        "expires_at": expires,
        "description": description,
    }
    key = admin(ctx).call("POST", "/api/keys", json=body)
    out.print(f"key {key['key_id']}: {key['key']}  (shown once)")


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    """List API keys (never the keys themselves).

    Example: berth key list
    """
    columns = [
        ("id", "key_id"),
        ("owner", "owner"),
        ("feeds", "feeds"),
        ("privileges", "privileges"),
        ("expires", "expires_at"),
        ("revoked", "revoked"),
        ("description", "description"),
    ]
    print_table(admin(ctx).call("GET", "/api/keys"), columns)


@key_app.command("revoke")
def key_revoke(
    ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="KEY_ID", hidden=True)]
) -> None:
    """Revoke API key KEY_ID (berth key list shows the ids).

    Example: berth key revoke k-1a2b3c4d
    """
    admin(ctx).call("DELETE", f"/api/keys/{key_id}")
    out.print(f"key {key_id} revoked")
