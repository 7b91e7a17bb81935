"""``berth auth …``: the token machinery — signing-key rotation and refresh tokens.

``rotate-key`` calls ``POST /api/signing-keys/rotate``; ``tokens list|revoke`` call
``/api/refresh-tokens`` (admin only; each revocation is a ``refreshtoken.revoked`` event). See
docs/SECURITY.md, "Signing keys" and "Refresh tokens".
"""

from __future__ import annotations

from typing import Annotated

import typer

from berth.cli_support import CliError, out, print_table
from berth.client import admin

app = typer.Typer(
    help="Token signing keys and refresh tokens.\n\nExample: berth auth tokens list --user alice",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="Refresh tokens (docker login, berth login): list, revoke.\n\n"
    "Example: berth auth tokens revoke --user alice",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")
User = Annotated[
    str | None, typer.Option("--user", metavar="USER", help="a user's tokens (an API key's: api-key:ID)")
]


@app.command("rotate-key")
def rotate_key(ctx: typer.Context) -> None:
    """Create a new token signing key; tokens signed with the old ones stay valid for twice the
    token lifetime (auth.token_ttl_seconds), then the old keys are retired.

    Example: berth auth rotate-key
    """
    kid = admin(ctx).call("POST", "/api/signing-keys/rotate")["kid"]
    out.print(
        f"signing key {kid} created; new tokens are signed with it, older keys retire after the overlap"
    )


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    user: User = None,
    all_: Annotated[bool, typer.Option("--all", metavar="", help="also revoked and expired tokens")] = False,
) -> None:
    """List refresh tokens (ids and owners, never the tokens).

    Example: berth auth tokens list --user alice
    """
    tokens = admin(ctx).call(
        "GET", "/api/refresh-tokens", params={"user": user, "all": "true" if all_ else None}
    )
    columns = [
        ("id", "token_id"),
        ("user", "subject"),
        ("issued", "issued_at"),
        ("expires", "expires_at"),
        ("revoked", "revoked"),
    ]
    print_table(tokens, columns)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    token_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", hidden=True, show_default=False),
    ] = None,
    user: User = None,
) -> None:
    """Revoke one refresh token by ID, or every one of --user USER (they must log in again).

    Examples:

    \b
      berth auth tokens revoke t-0a1b2c3d4e5f
      berth auth tokens revoke --user alice
    """
    if (token_id is None) == (user is None):
        raise CliError("name one token ID or --user USER", 2)
    client = admin(ctx)
    if token_id is not None:
        client.call("DELETE", f"/api/refresh-tokens/{token_id}")
        out.print(f"refresh token {token_id} revoked")
        return
    revoked = client.call("DELETE", "/api/refresh-tokens", params={"user": user})["revoked"]
    out.print(f"{len(revoked)} refresh token(s) of {user} revoked")
