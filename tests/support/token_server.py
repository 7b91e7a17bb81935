"""A small Docker token server for Distribution's token auth (the upstream of connector tests).

Docker "Token Authentication Specification": ``GET /token?service=&scope=`` with Basic
credentials answers ``{"token", "expires_in"}``, a JWT signed with a key whose self-signed
certificate Distribution trusts (``auth.token.rootcertbundle``); the certificate travels in
the JWT's ``x5c`` header. Every scope asked for is granted to a valid user (the upstream's own
authorisation is not under test); wrong credentials get 401. Requests are counted.
Runs in a thread with its own event loop (uvicorn), on a free loopback port.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.net import free_port, wait_http


@dataclass
class TokenServer:
    """The running token server: its ``url``, the certificate Distribution must trust, and the
    token requests it answered (``issued``: ``(User-Agent, scope)`` pairs) or refused."""

    url: str
    cert_path: Path
    issued: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0

    def issued_to(self, agent: str) -> list[str]:
        """The scopes of the tokens issued to clients whose User-Agent is ``agent``."""
        return [scope for who, scope in self.issued if who == agent]


def _key_and_cert(workdir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = workdir / "token-cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _app(
    state: TokenServer, users: dict[str, str], key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> Starlette:
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    async def token(request: Request) -> JSONResponse:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        user, _, password = (
            base64.b64decode(value or "").decode().partition(":") if scheme == "Basic" else ("", "", "")
        )
        if users.get(user) != password or not user:
            state.refused += 1
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}, 401)
        access = []
        scopes = request.query_params.getlist("scope")
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": "test-issuer", "sub": user, "aud": request.query_params.get("service", ""),
            "exp": now + 300, "nbf": now - 5, "iat": now, "jti": str(uuid.uuid4()), "access": access,
        }  # fmt: skip
        state.issued.append((request.headers.get("user-agent", ""), " ".join(scopes)))
        signed = jwt.encode(claims, key, algorithm="ES256", headers={"x5c": x5c})
        return JSONResponse({"token": signed, "access_token": signed, "expires_in": 300})

    return Starlette(routes=[Route("/token", token), Route("/", lambda r: JSONResponse({}))])


@contextlib.contextmanager
def token_server(workdir: Path, users: dict[str, str]) -> Iterator[TokenServer]:
    """Serve tokens for ``users`` (name → password) until the block ends."""
    key, cert, cert_path = _key_and_cert(workdir)
    port = free_port()
    state = TokenServer(f"http://127.0.0.1:{port}", cert_path)
    server = uvicorn.Server(
        uvicorn.Config(_app(state, users, key, cert), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="token-server", daemon=True)
    thread.start()
    try:
        wait_http(f"{state.url}/")
        yield state
    finally:
        server.should_exit = True
        thread.join(10)
