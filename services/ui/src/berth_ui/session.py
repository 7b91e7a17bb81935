"""Sessions without server memory, CSRF tokens bound to them, and one-shot messages.

A login keeps the refresh token of the auth service's OAuth2 password grant in the cookie
``berth_session`` (HttpOnly, SameSite=Strict, Path=/, Secure when the browser uses HTTPS; no
expiry: it ends with the browser, and the token itself after ``auth.refresh_ttl_seconds``).
Every page exchanges it for a short-lived access token at ``POST /token``, so a revoked token,
a disabled user or a changed password ends the session at once, in every replica; logout
revokes it (``POST /auth/revoke``). The UI keeps nothing per session: any replica serves any
request, with no shared key to configure or rotate — the refresh token is itself the secret
(256 random bits, stored by the auth service only as a hash) and sealing it would only
protect it from someone who already holds the cookie (docs/SECURITY.md, "Web UI").

CSRF (every POST): the form field ``csrf`` must equal HMAC-SHA256(key = the session secret,
``"berth-ui-csrf"``) — the session secret is the refresh token, or before login the random
value of the ``berth_csrf`` cookie (so the login form is protected too). Another site can
neither read the cookie nor compute the token; SameSite=Strict already keeps the cookies off
cross-site requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "berth_session"
CSRF_COOKIE = "berth_csrf"
FLASH_COOKIE = "berth_flash"
CSRF_FIELD = "csrf"
_CSRF_CONTEXT = b"berth-ui-csrf"


def refresh_token(request: Request) -> str | None:
    """The session's refresh token, or ``None`` when not logged in."""
    return request.cookies.get(SESSION_COOKIE) or None


def secure(request: Request) -> bool:
    """Whether the browser talks HTTPS (directly, or to a trusted proxy that says so)."""
    return request.url.scheme == "https" or getattr(request.state, "external_url", "").startswith("https:")


def _cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure(request), path="/")


def start_session(response: Response, request: Request, refresh: str) -> None:
    """Set the session cookie after a login."""
    _cookie(response, request, SESSION_COOKIE, refresh)


def end_session(response: Response, request: Request) -> None:
    """Remove the session cookie (logout, or a token the auth service no longer accepts)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure(request))


def _secret(request: Request) -> str | None:
    return refresh_token(request) or request.cookies.get(CSRF_COOKIE)


def csrf_token(request: Request) -> str:
    """The token forms carry; makes the pre-login secret (``request.state.new_csrf``) if needed."""
    secret = _secret(request) or getattr(request.state, "new_csrf", None)
    if secret is None:
        secret = request.state.new_csrf = secrets.token_urlsafe(32)
    return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_valid(request: Request, submitted: str | None) -> bool:
    """Whether ``submitted`` is this session's CSRF token (constant-time comparison)."""
    secret = _secret(request)
    if not secret or not submitted:
        return False
    expected = hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, submitted)


def keep_csrf_secret(response: Response, request: Request) -> None:
    """Set the ``berth_csrf`` cookie when this response made a new pre-login secret."""
    new = getattr(request.state, "new_csrf", None)
    if new is not None:
        _cookie(response, request, CSRF_COOKIE, new)


def flash(response: Response, request: Request, text: str, level: str = "ok") -> None:
    """A message for the next page (``level``: ``ok`` or ``error``), carried in a cookie."""
    value = quote(json.dumps({"text": text[:500], "level": level}))
    _cookie(response, request, FLASH_COOKIE, value)


def take_flash(request: Request, response: Response) -> dict[str, str] | None:
    """The message left for this page (and remove it), or ``None``."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="strict", secure=secure(request))
    try:
        value = json.loads(unquote(raw))
        return {"text": str(value["text"]), "level": "error" if value.get("level") == "error" else "ok"}
    except (ValueError, KeyError, TypeError):
        return None
