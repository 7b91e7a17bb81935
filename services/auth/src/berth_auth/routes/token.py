"""The token endpoint (Docker "Token Authentication Specification" and "OAuth2 Token
Authentication") and the JWKS of the signing keys.

``GET /token?service=&scope=&scope=&account=&offline_token=`` with Basic credentials or none
(anonymous); ``POST /token`` form-encoded with ``grant_type=password`` (``username``,
``password``) or ``grant_type=refresh_token`` (``refresh_token``), ``scope`` space-separated.
Wrong credentials: 401 UNAUTHORIZED; repeated failures (per client address, and per user name
and address, across processes): 429 TOOMANYREQUESTS with ``Retry-After``; bad scope: 400.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from berth_auth.domain.credentials import ANONYMOUS_IDENTITY, Identity, authenticate
from berth_auth.domain.limits import LoginLimits
from berth_auth.domain.tokens import grant, issue, issue_refresh, redeem_refresh
from berth_auth.routes.counted import counted
from berth_common.auth.scopes import ScopeInvalid, parse_scopes
from berth_common.errors import Unauthorized
from berth_common.events import Metadata
from berth_common.http.errors import BASIC_CHALLENGE
from berth_common.http.urls import client_host
from berth_common.runtime import Resources

router = APIRouter(tags=["token"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def _limits(request: Request) -> LoginLimits:
    resources = _resources(request)
    return LoginLimits(resources.pool, resources.settings.auth)


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII header text
        raise Unauthorized("malformed Basic credentials", headers=BASIC_CHALLENGE) from None
    if not sep or not user:
        raise Unauthorized("malformed Basic credentials: expected user:password", headers=BASIC_CHALLENGE)
    return user, password


async def _login(request: Request, user: str, password: str) -> Identity:
    ip = client_host(request, _resources(request).settings)  # X-Forwarded-For of trusted proxies
    return await authenticate(_resources(request).pool, _limits(request), user, password, ip)


def _check_service(request: Request, service: str | None) -> None:
    expected = _resources(request).settings.auth.service
    if service and service != expected:
        raise ScopeInvalid(f"unknown service {service[:100]!r}; this registry is {expected!r}")


async def _respond(request: Request, identity: Identity, scopes: list[str], refresh: bool) -> JSONResponse:
    resources = _resources(request)
    access = await grant(resources.pool, identity, parse_scopes(scopes), resources.settings.default_feed)
    body: dict[str, Any] = await issue(resources.pool, resources.settings.auth, identity, access)
    if refresh and not identity.anonymous:
        body["refresh_token"] = await issue_refresh(
            resources.store, resources.settings.auth, identity.subject, Metadata(actor=identity.subject)
        )
    return JSONResponse(body, headers=NO_STORE)


@router.get("/token")
@counted
async def get_token(request: Request) -> JSONResponse:
    """A bearer token for the requested scopes (anonymous without credentials)."""
    params = request.query_params
    _check_service(request, params.get("service"))
    scopes = params.getlist("scope")
    parse_scopes(scopes)  # 400 before any credential check
    credentials = _basic(request)
    identity = await _login(request, *credentials) if credentials else ANONYMOUS_IDENTITY
    offline = params.get("offline_token", "").lower() == "true"
    return await _respond(request, identity, scopes, offline)


@router.post("/token")
@counted
async def post_token(request: Request) -> JSONResponse:
    """OAuth2 password or refresh_token grant (form-encoded); see the module docstring."""
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    _check_service(request, form.get("service"))
    scopes = [form.get("scope", "")]
    parse_scopes(scopes)
    grant_type = form.get("grant_type", "")
    if grant_type == "password":
        identity = await _login(request, form.get("username", ""), form.get("password", ""))
        return await _respond(request, identity, scopes, refresh=True)
    if grant_type == "refresh_token":
        identity = await redeem_refresh(_resources(request).pool, form.get("refresh_token", ""))
        return await _respond(request, identity, scopes, refresh=False)
    raise ScopeInvalid(f"unsupported grant_type {grant_type[:40]!r}: use password or refresh_token")


@router.get("/auth/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    """The public keys that verify Berth's tokens (RFC 7517 JWK Set), during overlaps several."""
    rows = await _resources(request).pool.fetch(
        "SELECT kid, public_pem FROM auth.v_signing_keys ORDER BY created_at DESC"
    )
    keys = []
    for row in rows:
        public = load_pem_public_key(row["public_pem"].encode())
        assert isinstance(public, EllipticCurvePublicKey)  # ES256 keys only (domain/keys.py)
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        keys.append({**jwk, "kid": row["kid"], "use": "sig", "alg": "ES256"})
    return JSONResponse({"keys": keys})
