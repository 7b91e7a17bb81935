"""Token edge cases (issue 3 §4): forged, expired, misdirected and malformed tokens and scopes
give clean 401/400 (never 500); credentials, rate limits, refresh tokens, API keys, rotation.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from berth_auth.domain.keys import signing_key
from tests.integration.auth_world import CONFIG, CONFIG_DIGEST, api, client, raw_client, seed_repository
from tests.support.berth_app import BerthApp, berth_app

pytestmark = pytest.mark.integration
PW = "pw-tokens-1"
PULL = "/v2/dmc/base/manifests/base"


@pytest.fixture(scope="module")
async def berth() -> AsyncIterator[BerthApp]:
    """Feed ``dmc`` with ``dmc/base``; user ``bob`` may view ``dmc``."""
    async with berth_app() as running:
        await running.create_feed("dmc")
        await seed_repository(running, "dmc/base")
        await api(running, "POST", "/api/users", {"name": "bob", "password": PW})
        await api(
            running,
            "POST",
            "/api/privileges",
            {"principal_kind": "user", "principal": "bob", "feed": "dmc", "privilege": "view"},
        )
        yield running


def basic(user: str, password: str) -> dict[str, str]:
    """A Basic ``Authorization`` header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def mint(berth: BerthApp, key: Any = None, kid: str | None = None, **changes: Any) -> str:
    """A token signed with Berth's key (or ``key``), with claims overridden by ``changes``."""
    real_kid, real_key = await signing_key(berth.app.state.resources.pool, berth.settings.auth)
    now = int(time.time())
    claims = {
        "iss": "berth",
        "sub": "bob",
        "aud": "berth",
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "x",
        "access": [{"type": "repository", "name": "dmc/base", "actions": ["pull"]}],
    }
    claims.update(changes)
    return jwt.encode(claims, key or real_key, algorithm="ES256", headers={"kid": kid or real_kid})


async def pull_with(berth: BerthApp, token: str) -> httpx.Response:
    """GET the test manifest with ``token``."""
    async with raw_client(berth) as c:
        return await c.get(PULL, headers={"Authorization": f"Bearer {token}"})


async def test_valid_minted_token_pulls(berth: BerthApp) -> None:
    assert (await pull_with(berth, await mint(berth))).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not-yet-valid",
        "foreign-key",
        "unknown-kid",
        "wrong-audience",
        "wrong-issuer",
        "tampered-access",
        "missing-actions",
        "garbage",
        "alg-none",
        "access-not-a-list",
    ],
)
async def test_bad_tokens_are_401(berth: BerthApp, case: str) -> None:
    now = int(time.time())
    foreign = ec.generate_private_key(ec.SECP256R1())
    tokens = {
        "expired": lambda: mint(berth, exp=now - 120, iat=now - 600, nbf=now - 600),
        "not-yet-valid": lambda: mint(berth, nbf=now + 600),
        "foreign-key": lambda: mint(berth, key=foreign),
        "unknown-kid": lambda: mint(berth, key=foreign, kid="ES256-unknown"),
        "wrong-audience": lambda: mint(berth, aud="another-registry"),
        "wrong-issuer": lambda: mint(berth, iss="someone-else"),
        "missing-actions": lambda: mint(
            berth, access=[{"type": "repository", "name": "dmc/base", "actions": ["push"]}]
        ),
        "access-not-a-list": lambda: mint(berth, access={"dmc/base": "pull"}),
    }
    if case == "tampered-access":
        header, payload, sig = (await mint(berth, access=[])).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["access"] = [{"type": "repository", "name": "dmc/base", "actions": ["pull"]}]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{header}.{forged}.{sig}"
    elif case == "garbage":
        token = "not.a.token"
    elif case == "alg-none":
        token = jwt.encode({"sub": "bob", "access": []}, None, algorithm="none")  # type: ignore[arg-type]
    else:
        token = await tokens[case]()
    r = await pull_with(berth, token)
    assert r.status_code == 401, r.text
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = r.headers["www-authenticate"]
    assert 'scope="repository:dmc/base:pull"' in challenge
    want = "insufficient_scope" if case == "missing-actions" else "invalid_token"
    assert f'error="{want}"' in challenge


async def test_challenge_before_404_and_on_base(berth: BerthApp) -> None:
    async with raw_client(berth) as c:
        base = await c.get("/v2/")
        assert base.status_code == 401
        assert base.headers["www-authenticate"] == 'Bearer realm="http://berth.test/token",service="berth"'
        hidden = await c.get("/v2/dmc/does-not-exist/manifests/x")
        assert hidden.status_code == 401  # not 404: nothing leaks
        assert (await c.get("/v2/", headers=basic("bob", PW))).status_code == 401  # token only


async def token_for(
    berth: BerthApp, *scopes: str, auth: tuple[str, str] | None = ("bob", PW), **params: str
) -> httpx.Response:
    """``GET /token`` with repeated ``scope`` parameters."""
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("service", "berth"),
        *[("scope", s) for s in scopes],
        *params.items(),
    ]
    async with raw_client(berth) as c:
        return await c.get("/token", params=query, headers=basic(*auth) if auth else {})


def access_of(r: httpx.Response) -> list[dict[str, Any]]:
    """The ``access`` claim of a token response (unverified)."""
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    access: list[dict[str, Any]] = claims["access"]
    return access


@pytest.mark.parametrize(
    ("scope", "actions"),
    [
        ("repository:dmc/base:pull", ["pull"]),
        ("repository:dmc/base:push,pull", ["pull"]),
        ("repository:dmc/base:delete,push,pull", ["pull"]),
        ("repository:dmc/base:*", ["pull"]),
        ("repository(plugin):dmc/base:pull", ["pull"]),
        ("repository:dmc/deeper/path/name:pull", ["pull"]),
        ("repository:localhost:5000/dmc/base:pull", []),
        ("repository:other/base:pull", []),
    ],
)
async def test_scope_grammar_grants_the_intersection(berth: BerthApp, scope: str, actions: list[str]) -> None:
    r = await token_for(berth, scope)
    assert r.status_code == 200, r.text
    granted = [e["actions"] for e in access_of(r)]
    assert granted == ([actions] if actions else [])


@pytest.mark.parametrize(
    "scope",
    [
        "repository",
        "repository:dmc/base",
        ":dmc/base:pull",
        "repository:dmc/base:",
        "REPO:dmc/base:pull",
        "repository::pull",
        "repository:dmc/base:pu-ll",
        "repository:dmc base:pull\x00",
    ],
)
async def test_malformed_scopes_are_400(berth: BerthApp, scope: str) -> None:
    r = await token_for(berth, scope)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "SCOPE_INVALID"


async def test_many_scopes_and_catalog(berth: BerthApp) -> None:
    many = [f"repository:dmc/img{i}:pull" for i in range(99)] + ["registry:catalog:*"]
    r = await token_for(berth, *many)
    assert r.status_code == 200
    access = access_of(r)
    assert len([e for e in access if e["type"] == "repository"]) == 99
    assert {"type": "feed", "name": "dmc", "actions": ["pull"]} in access
    assert (await token_for(berth, *many, "repository:dmc/one-more:pull")).status_code == 400


async def test_token_response_shape_and_refresh(berth: BerthApp) -> None:
    r = await token_for(berth, "repository:dmc/base:pull", offline_token="true")
    body = r.json()
    assert body["token"] == body["access_token"] and isinstance(body["expires_in"], int)
    assert body["expires_in"] >= 60 and body["issued_at"].endswith("Z") and body["refresh_token"]
    async with raw_client(berth) as c:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "service": "berth",
            "client_id": "test",
            "scope": "repository:dmc/base:pull",
        }
        refreshed = await c.post("/token", data=form)
        assert refreshed.status_code == 200 and access_of(refreshed)[0]["actions"] == ["pull"]
        password = await c.post(
            "/token", data={"grant_type": "password", "username": "bob", "password": PW, "service": "berth"}
        )
        assert password.status_code == 200 and password.json()["refresh_token"]
        bad = await c.post("/token", data={"grant_type": "password", "username": "bob", "password": "x"})
        assert bad.status_code == 401
        assert (await c.post("/token", data={"grant_type": "magic"})).status_code == 400
        await api(berth, "PUT", "/api/users/bob/password", {"password": PW})  # revokes refresh tokens
        assert (await c.post("/token", data=form)).status_code == 401


async def test_wrong_password_then_rate_limit_only_that_user(berth: BerthApp) -> None:
    await api(berth, "POST", "/api/users", {"name": "carol", "password": PW})
    r = await token_for(berth, auth=("carol", "wrong"))
    assert r.status_code == 401 and "invalid username or password" in r.text
    assert r.headers["www-authenticate"].startswith('Basic realm="berth"')  # RFC 7235: a 401 says how
    limit = berth.settings.auth.failures_per_minute
    statuses = [(await token_for(berth, auth=("carol", "wrong"))).status_code for _ in range(limit)]
    assert statuses[-1] == 429
    limited = await token_for(berth, auth=("carol", PW))
    assert limited.status_code == 429 and limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert (await token_for(berth, auth=("bob", PW))).status_code == 200


async def test_api_keys_login_limits_expiry_and_revocation(berth: BerthApp) -> None:
    key = await api(berth, "POST", "/api/keys", {"feeds": ["dmc"], "privileges": ["view"]})
    r = await token_for(berth, "repository:dmc/base:pull,push", auth=("api", key["key"]))
    assert access_of(r)[0]["actions"] == ["pull"]
    old = await api(
        berth, "POST", "/api/keys", {"privileges": ["view"], "expires_at": "2001-01-01T00:00:00Z"}
    )
    assert (await token_for(berth, auth=("api", old["key"]))).status_code == 401
    await api(berth, "DELETE", f"/api/keys/{key['key_id']}")
    assert (await token_for(berth, auth=("api", key["key"]))).status_code == 401


async def test_rotation_keeps_old_tokens_valid(berth: BerthApp) -> None:
    old = await mint(berth)
    kid = (await api(berth, "POST", "/api/signing-keys/rotate"))["kid"]
    new = await mint(berth)
    assert jwt.get_unverified_header(new)["kid"] == kid != jwt.get_unverified_header(old)["kid"]
    assert (await pull_with(berth, old)).status_code == 200
    assert (await pull_with(berth, new)).status_code == 200
    async with raw_client(berth) as c:
        kids = {k["kid"] for k in (await c.get("/auth/jwks.json")).json()["keys"]}
    assert kid in kids and jwt.get_unverified_header(old)["kid"] in kids


async def test_mount_needs_pull_on_the_source(berth: BerthApp) -> None:
    r = await token_for(berth, "repository:dmc/target:pull,push", auth=("admin", "berth-test-admin"))
    only_target = r.json()["token"]
    url = f"/v2/dmc/target/blobs/uploads/?mount={CONFIG_DIGEST}&from=dmc/base"
    async with raw_client(berth) as c:
        fallback = await c.post(url, headers={"Authorization": f"Bearer {only_target}"})
    assert fallback.status_code == 202  # no pull on dmc/base in the token: no mount, no leak
    async with client(berth, "admin", "berth-test-admin") as c:
        assert (await c.post(url)).status_code == 201
        assert (await c.get(f"/v2/dmc/target/blobs/{CONFIG_DIGEST}")).content == CONFIG


async def test_generated_admin_password_is_printed_but_never_logged(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one-time password goes to the terminal (stderr) once, not into the collected log."""
    from tests.support.berth_app import berth_app

    caplog.set_level("INFO")
    async with berth_app(admin_password=""):
        pass
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "created admin user 'admin' with password " in printed
    password = printed.split("with password ", 1)[1].split()[0]
    assert "auth.admin_created" in printed + caplog.text  # the log line is there…
    assert (printed + caplog.text).count(password) == 1  # …without the password
