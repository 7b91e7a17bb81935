"""``berth user|group|grant|revoke|key …``: identities and privileges through the admin API.

Every command logs in with admin credentials (``--user/--password`` or ``BERTH_ADMIN_USER`` /
``BERTH_ADMIN_PASSWORD``) through the token flow (``berth.token_auth``) and calls
``/api/users``, ``/api/groups``, ``/api/privileges`` or ``/api/keys`` of a running Berth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from berth.runfile import resolve

if TYPE_CHECKING:  # imported lazily: httpx costs ~0.4 s at every CLI start
    import httpx

    from berth.token_auth import RegistryAuth

user_app = typer.Typer(help="Users: add, passwd, list, disable.", no_args_is_help=True)
group_app = typer.Typer(help="Groups: create, add, remove, list.", no_args_is_help=True)
key_app = typer.Typer(
    help="API keys (docker login -u api -p KEY): create, list, revoke.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="Berth's URL (default: BERTH_URL, run.json)")]
DataDir = Annotated[Path, typer.Option("--data-dir", envvar="BERTH_DATA_DIR")]
AdminUser = Annotated[str, typer.Option("--user", envvar="BERTH_ADMIN_USER", help="admin login")]
AdminPassword = Annotated[
    str | None, typer.Option("--password", envvar="BERTH_ADMIN_PASSWORD", help="admin password")
]
Feed = Annotated[str | None, typer.Option("--feed", help="one feed (default: all feeds)")]


def admin_auth(user: str | None = None, password: str | None = None) -> RegistryAuth:
    """Token-flow credentials for the admin API (arguments, else the environment)."""
    from berth.token_auth import RegistryAuth

    return RegistryAuth(
        user or os.environ.get("BERTH_ADMIN_USER", "admin"),
        password if password is not None else os.environ.get("BERTH_ADMIN_PASSWORD", ""),
    )


def call(
    method: str,
    path: str,
    *,
    url: str | None = None,
    data_dir: Path = Path("berth-data"),
    user: str | None = None,
    password: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One admin API call; prints the error and exits 1 (2 if unreachable) on failure."""
    import httpx

    base = url or resolve(data_dir)[0]
    if not (password if password is not None else os.environ.get("BERTH_ADMIN_PASSWORD")):
        err.print(
            "no admin password: pass --password or set BERTH_ADMIN_PASSWORD (berth up printed it"
            " at the first start)"
        )
        raise typer.Exit(2)
    try:
        response = httpx.request(
            method, base.rstrip("/") + path, timeout=30, auth=admin_auth(user, password), **kwargs
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach Berth at {base}: {exc}[/red]")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            message = "; ".join(f"{e['code']}: {e['message']}" for e in response.json()["errors"])
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        err.print(f"[red]{message or response.status_code}[/red]")
        raise typer.Exit(1)
    return response


def _table(rows: list[dict[str, Any]], *columns: str) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


@user_app.command("add")
def user_add(
    name: str,
    new_password: Annotated[
        str, typer.Option("--new-password", prompt=True, hide_input=True, help="the new user's password")
    ],
    email: str = "",
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Create user NAME."""
    call(
        "POST",
        "/api/users",
        url=url,
        data_dir=data_dir,
        user=user,
        password=password,
        json={"name": name, "password": new_password, "email": email},
    )
    out.print(f"user {name} created")


@user_app.command("passwd")
def user_passwd(
    name: str,
    new_password: Annotated[str, typer.Option("--new-password", prompt=True, hide_input=True)],
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Set NAME's password (their refresh tokens are revoked)."""
    call(
        "PUT",
        f"/api/users/{name}/password",
        url=url,
        data_dir=data_dir,
        user=user,
        password=password,
        json={"password": new_password},
    )
    out.print(f"password of {name} changed")


@user_app.command("list")
def user_list(
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """List users."""
    rows = call("GET", "/api/users", url=url, data_dir=data_dir, user=user, password=password).json()
    _table(rows, "name", "email", "disabled", "groups")


@user_app.command("disable")
def user_disable(
    name: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Disable user NAME."""
    call("POST", f"/api/users/{name}/disable", url=url, data_dir=data_dir, user=user, password=password)
    out.print(f"user {name} disabled")


@group_app.command("create")
def group_create(
    name: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Create group NAME."""
    call("POST", "/api/groups", url=url, data_dir=data_dir, user=user, password=password, json={"name": name})
    out.print(f"group {name} created")


@group_app.command("add")
def group_add(
    group: str,
    member: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Add user MEMBER to GROUP."""
    call(
        "POST",
        f"/api/groups/{group}/members",
        url=url,
        data_dir=data_dir,
        user=user,
        password=password,
        json={"user": member},
    )
    out.print(f"{member} added to {group}")


@group_app.command("remove")
def group_remove(
    group: str,
    member: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Remove user MEMBER from GROUP."""
    call(
        "DELETE",
        f"/api/groups/{group}/members/{member}",
        url=url,
        data_dir=data_dir,
        user=user,
        password=password,
    )
    out.print(f"{member} removed from {group}")


@group_app.command("list")
def group_list(
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """List groups and members."""
    rows = call("GET", "/api/groups", url=url, data_dir=data_dir, user=user, password=password).json()
    _table(rows, "name", "members")


def _principal(principal: str) -> tuple[str, str]:
    kind, _, name = principal.partition(":")
    if kind in ("everyone", "authenticated", "anonymous"):
        return kind, ""
    if kind not in ("user", "group", "key") or not name:
        raise typer.BadParameter(
            "PRINCIPAL is user:NAME, group:NAME, key:ID, everyone, authenticated or anonymous"
        )
    return kind, name


def grant(
    principal: Annotated[
        str, typer.Argument(help="user:NAME | group:NAME | key:ID | everyone | authenticated | anonymous")
    ],
    privilege: Annotated[str, typer.Argument(help="view|add|overwrite|delete|manage|admin")],
    feed: Feed = None,
    deny: Annotated[bool, typer.Option(help="a restriction")] = False,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Grant (or with --deny restrict) PRIVILEGE on --feed (default all feeds) to PRINCIPAL."""
    kind, name = _principal(principal)
    body = {
        "principal_kind": kind,
        "principal": name,
        "privilege": privilege,
        "feed": feed,
        "effect": "deny" if deny else "grant",
    }
    rule = call(
        "POST", "/api/privileges", url=url, data_dir=data_dir, user=user, password=password, json=body
    ).json()
    out.print(f"rule {rule['rule_id']}: {body['effect']} {privilege} on {feed or 'all feeds'} to {principal}")


def revoke(
    rule_id: Annotated[str, typer.Argument(help="a rule id (berth grant prints it)")],
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Remove a grant or restriction by its rule id."""
    call("DELETE", f"/api/privileges/{rule_id}", url=url, data_dir=data_dir, user=user, password=password)
    out.print(f"rule {rule_id} removed")


@key_app.command("create")
def key_create(
    owner: Annotated[str | None, typer.Option(help="the user the key acts for")] = None,
    feed: Annotated[list[str] | None, typer.Option(help="limit to feeds (repeat)")] = None,
    privilege: Annotated[list[str] | None, typer.Option(help="ceiling (repeat)")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry")] = None,
    description: str = "",
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Create an API key and print it once (log in with user "api" and the key as password)."""
    body = {
        "owner": owner,
        "feeds": feed or None,
        "privileges": privilege or ["view"],
        "expires_at": expires,
        "description": description,
    }
    key = call(
        "POST", "/api/keys", url=url, data_dir=data_dir, user=user, password=password, json=body
    ).json()
    out.print(f"key {key['key_id']}: {key['key']}  (shown once)")


@key_app.command("list")
def key_list(
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """List API keys (never the keys)."""
    rows = call("GET", "/api/keys", url=url, data_dir=data_dir, user=user, password=password).json()
    _table(rows, "key_id", "owner", "feeds", "privileges", "expires_at", "revoked", "description")


@key_app.command("revoke")
def key_revoke(
    key_id: str,
    url: Url = None,
    data_dir: DataDir = Path("berth-data"),
    user: AdminUser = "admin",
    password: AdminPassword = None,
) -> None:
    """Revoke API key KEY_ID."""
    call("DELETE", f"/api/keys/{key_id}", url=url, data_dir=data_dir, user=user, password=password)
    out.print(f"key {key_id} revoked")
