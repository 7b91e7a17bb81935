"""The one client of Berth's admin API, shared by every ``berth`` command.

Where Berth is (:meth:`Connection.target`), first match wins:

1. ``--url`` / ``BERTH_URL`` (the root options, ``berth.cli``);
2. ``--data-dir`` / ``BERTH_DATA_DIR`` when given: the ``run.json`` of that ``berth up``;
3. the current stored login (``berth login URL``, ``berth.logins``);
4. ``./berth-data/run.json`` (a ``berth up`` started in this folder);
5. ``http://127.0.0.1:5000``.

Who calls (:func:`credentials`): ``BERTH_ADMIN_PASSWORD`` (user ``BERTH_AUTH__ADMIN_USER``, default
``admin``) when set; else the stored login for that URL (its refresh token); else a password
prompt on a terminal. Requests go through httpx with ``berth.token_auth.RegistryAuth`` (the
Docker token flow); refusals and unreachable servers become one-line :class:`CliError`\\ s.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from berth import logins
from berth.cli_support import CliError
from berth.runfile import RunInfo, resolve

if TYPE_CHECKING:  # imported lazily: httpx costs ~0.4 s at every CLI start
    import httpx

    from berth.token_auth import RegistryAuth

DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_DATA_DIR = Path("berth-data")
ELSEWHERE = "point the CLI at a running Berth with --url URL, BERTH_URL=URL or berth login URL"
TIMEOUT = 30.0  # seconds for one request


@dataclass(frozen=True)
class Target:
    """The Berth the CLI talks to: its ``url``, where that came from (``source``, said in
    errors) and the stored login for it, if any."""

    url: str
    source: str
    login: logins.StoredLogin | None


@dataclass
class Connection:
    """The root options (declared once, on ``berth`` itself) and the client built from them.

    ``url``/``url_source``: ``--url`` or ``BERTH_URL``; ``data_dir``: ``--data-dir`` or
    ``BERTH_DATA_DIR`` (``None``: neither given, ``./berth-data`` is looked at).
    """

    url: str | None = None
    url_source: str = "--url"
    data_dir: Path | None = None
    _admin: AdminClient | None = field(default=None, repr=False)

    @property
    def data_dir_or_default(self) -> Path:
        """``data_dir``, or ``./berth-data``."""
        return self.data_dir or DEFAULT_DATA_DIR

    def target(self) -> Target:
        """Where Berth is (module docstring). Raises ``CliError`` (2) for a ``--data-dir``
        with no running ``berth up`` (no ``run.json``)."""
        if self.url:
            url = logins.normalise_url(self.url)
            return Target(url, self.url_source, logins.find(url))
        if self.data_dir is not None:
            return _from_run_file(self.data_dir, required=True)
        stored = logins.current()
        if stored is not None:
            return Target(stored.url, f"the login stored in {logins.logins_file()}", stored)
        return _from_run_file(DEFAULT_DATA_DIR, required=False)

    def database_url(self) -> str:
        """PostgreSQL of the local Berth (``gc``, ``projections``): ``BERTH_DATABASE_URL``, else
        the ``run.json`` of the data dir. Raises ``CliError`` (2) saying how to name it."""
        return self._service_url(1, "database", "BERTH_DATABASE_URL")

    def nats_url(self) -> str:
        """NATS of the local Berth (``events``): ``BERTH_NATS_URL``, else ``run.json``."""
        return self._service_url(2, "NATS", "BERTH_NATS_URL")

    def _service_url(self, index: int, what: str, variable: str) -> str:
        found = resolve(self.data_dir_or_default)[index]
        if found:
            return found
        run_file = (self.data_dir_or_default / "run.json").resolve()
        raise CliError(
            f"no {what} to work on: {variable} is not set and no berth up runs with data dir"
            f" {self.data_dir_or_default} ({run_file} does not exist); on the machine where berth up"
            f" runs, name its data dir with --data-dir DIR (or BERTH_DATA_DIR), or set {variable}",
            2,
        )

    def admin(self) -> AdminClient:
        """The admin API client (built once per command)."""
        return self.client()

    def client(self, *, anonymous: bool = False) -> AdminClient:
        """The API client (built once per command); with ``anonymous``, calling without any
        credentials is fine (reading a public feed) and nobody is asked for a password."""
        if self._admin is None:
            target = self.target()
            self._admin = AdminClient(target, credentials(target, anonymous=anonymous))
        return self._admin


def _from_run_file(data_dir: Path, *, required: bool) -> Target:
    run_file = data_dir / "run.json"
    info = RunInfo.read(data_dir)
    if info is not None:
        url = logins.normalise_url(info.url)
        return Target(url, f"{run_file.resolve()}", logins.find(url))
    if required:
        raise CliError(
            f"no Berth is running with data dir {data_dir} ({run_file} does not exist): start it"
            f" with berth up --data-dir {data_dir}, or {ELSEWHERE}",
            2,
        )
    return Target(
        DEFAULT_URL, "the default: no --url, BERTH_URL, login or ./berth-data", logins.find(DEFAULT_URL)
    )


def connection(ctx: typer.Context) -> Connection:
    """The :class:`Connection` of the running ``berth`` command (a default one if none)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Connection):
        obj = ctx.find_root().obj = Connection()
    return obj


def admin(ctx: typer.Context) -> AdminClient:
    """The admin API client of the running ``berth`` command."""
    return connection(ctx).admin()


def credentials(target: Target, *, anonymous: bool = False) -> RegistryAuth:
    """Who the CLI calls as (module docstring); nobody (anonymous tokens) when ``anonymous``
    and there are no credentials. Raises ``CliError`` (2) with none at all otherwise."""
    from berth.token_auth import RegistryAuth

    user = os.environ.get("BERTH_AUTH__ADMIN_USER") or "admin"
    password = os.environ.get("BERTH_ADMIN_PASSWORD")
    if password:
        return RegistryAuth(user, password)
    if target.login is not None:
        return RegistryAuth(target.login.username, refresh_token=target.login.refresh_token)
    if anonymous:
        return RegistryAuth()
    challenge(target.url, target.source)  # a Berth that is not there is the first thing to say
    if sys.stdin.isatty():
        typed: str = typer.prompt(f"Password of {user} at {target.url}", hide_input=True, err=True)
        return RegistryAuth(user, typed)
    raise CliError(
        f"no credentials for {target.url}: log in with berth login {target.url}, or set"
        " BERTH_ADMIN_PASSWORD (berth up printed the admin password at its first start)",
        2,
    )


class AdminClient:
    """Calls to ``target``'s admin API (``/api/…``) with ``auth``; one httpx client per command."""

    def __init__(self, target: Target, auth: RegistryAuth) -> None:
        import httpx

        self.target, self.auth = target, auth
        self.http = httpx.Client(base_url=target.url, auth=auth, timeout=TIMEOUT)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of ``method path`` (``None`` for an empty one).

        Raises:
            CliError: (1) Berth refused it (the ``{"errors": [...]}`` body as one line);
                (2) Berth could not be reached.
        """
        response = self._send(method, path, json=json, params=params)
        return response.json() if response.content else None

    def pages(
        self, path: str, *, params: dict[str, Any] | None = None, limit: int | None = None
    ) -> list[Any]:
        """The items of a paginated listing (a JSON array per page), following ``Link:
        rel="next"`` until there is none or ``limit`` items are in. Raises as :meth:`call`."""
        items: list[Any] = []
        next_path: str | None = path
        while next_path and (limit is None or len(items) < limit):
            response = self._send("GET", next_path, params=params)
            items.extend(response.json())
            next_path, params = response.links.get("next", {}).get("url"), None
        return items if limit is None else items[:limit]

    def _send(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        import httpx

        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, json=json, params=query)
        except httpx.HTTPError as exc:
            raise unreachable(self.target, exc) from None
        if response.status_code >= 400:
            raise CliError(self._refusal(response))
        return response

    def _refusal(self, response: httpx.Response) -> str:
        from berth.token_auth import error_text

        url, problem = self.target.url, self.auth.token_error
        if response.status_code == 401 and problem and self.auth.refresh_token is not None:
            return f"the login stored for {url} was refused ({problem}): log in again with berth login {url}"
        if response.status_code == 401 and problem:
            return f"cannot log in to {url} as {self.auth.username}: {problem}"
        return error_text(response)


def unreachable(target: Target, exc: Exception) -> CliError:
    """The error for a Berth that did not answer: the URL tried, where it came from, what to do."""
    reason = str(exc) or type(exc).__name__
    remedy = ELSEWHERE
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        remedy = "a private CA, as berth up --tls makes? trust it: export SSL_CERT_FILE=DATA_DIR/tls/ca.crt"
    return CliError(f"cannot reach Berth at {target.url} ({target.source}): {reason}; {remedy}", 2)


def challenge(url: str, source: str = "berth login") -> dict[str, str]:
    """The Bearer challenge parameters (``realm``, ``service``) of Berth at ``url``'s ``/v2/``.

    Raises:
        CliError: (2) unreachable, or no Bearer challenge (not a Berth, or not a registry).
    """
    import httpx

    from berth.token_auth import CHALLENGE_PARAM

    target = Target(url, source, None)
    try:
        response = httpx.get(f"{url}/v2/", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise unreachable(target, exc) from None
    header = response.headers.get("www-authenticate", "")
    if response.status_code != 401 or not header.lower().startswith("bearer "):
        raise CliError(f"{url} does not look like Berth: GET /v2/ answered {response.status_code}", 2)
    return dict(CHALLENGE_PARAM.findall(header))


def password_login(url: str, username: str, password: str) -> tuple[logins.StoredLogin, bool]:
    """Log in with the OAuth2 password grant; returns the login to store (its refresh token)
    and whether the user holds Admin (the admin API needs it).

    Raises:
        CliError: (1) wrong credentials or another refusal; (2) unreachable.
    """
    import httpx

    from berth.token_auth import error_text

    params = challenge(url)
    form = {
        "grant_type": "password",
        "username": username,
        "password": password,
        "service": params.get("service", ""),
        "scope": "registry:admin:*",
        "client_id": "berth-cli",
    }
    try:
        response = httpx.post(params.get("realm", ""), data=form, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise unreachable(Target(url, "berth login", None), exc) from None
    if response.status_code != 200:
        raise CliError(f"cannot log in to {url} as {username}: {error_text(response)}")
    body = response.json()
    login = logins.StoredLogin(
        url, username, body["refresh_token"], params["realm"], params.get("service", "")
    )
    return login, _grants_admin(body["token"])


def _grants_admin(token: str) -> bool:
    """Whether a token's ``access`` claim holds ``registry:admin`` (read, not verified: the
    server verifies; this only decides what to tell the user)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return any(e.get("type") == "registry" and e.get("name") == "admin" for e in claims.get("access", []))


def revoke_login(login: logins.StoredLogin) -> bool:
    """Give up ``login``'s refresh token at its server (RFC 7009, ``POST /auth/revoke``);
    returns whether the server answered (the token is dead then). Never raises."""
    import httpx

    try:
        response = httpx.post(
            f"{login.url}/auth/revoke", data={"token": login.refresh_token}, timeout=TIMEOUT
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200
