"""The authorisation seam used by every ``/v2/`` and ``/api/`` route (docs/DESIGN.md §4).

Routes declare the action they need with ``require(action)`` (a FastAPI dependency) or, for
the hot registry routes, ``berth_common.http.endpoints.registry_route(…, action)``; both call
``authorize``, which verifies the bearer token locally (``berth_common.auth.tokens``) and
checks its ``access`` claim:

- ``/v2/`` (base): any valid token; ``/v2/_catalog``: ``registry:catalog:*``;
- ``/v2/<name>/…``: ``repository:<name>:<action>`` (``pull``, ``push`` or ``delete``);
- ``/api/…`` (admin JSON API): ``registry:admin:*`` (the Admin privilege).

Without a valid token: ``401 UNAUTHORIZED`` with ``WWW-Authenticate: Bearer realm=…,service=…,
scope=…`` (``error="invalid_token"`` for a bad one); with a token lacking the action: the same
with ``error="insufficient_scope"``. Either error comes with ``error_description`` (RFC 6750
§3), the body's message: clients built on Distribution's error parser (skopeo, podman, docker)
print it for a HEAD, which has no body to carry it. The challenge of a cross-repository mount
(``POST …/blobs/uploads/?mount=D&from=R``) also asks for ``repository:R:pull``, space-separated
in the one ``scope`` as Distribution does, so a client that builds its token request from the
challenge can mount; whether the token gets it is the token server's business. The challenge
comes before any 404, so an unauthorised caller learns nothing about what exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Depends, Request

from berth_common.auth.tokens import InvalidToken, KeyCache, verify
from berth_common.errors import NameInvalid, Unauthorized
from berth_common.http.urls import external_base_url
from berth_common.oci.reference import RepositoryName

Action = Literal["pull", "push", "delete", "*"]
Entry = tuple[str, str, frozenset[str]]


@dataclass(frozen=True)
class Caller:
    """The verified caller: ``subject`` (token ``sub``) and its ``access`` entries (type, name, actions)."""

    subject: str = "anonymous"
    access: tuple[Entry, ...] = field(default=())

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Caller:
        """From verified JWT claims."""
        access = tuple((e["type"], e["name"], frozenset(e["actions"])) for e in claims.get("access", []))
        return cls(str(claims.get("sub") or "anonymous"), access)

    def allows(self, kind: str, name: str, action: str) -> bool:
        """Whether an entry grants ``action`` (or ``*``) on ``kind:name``."""
        return any(k == kind and n == name and (action in a or "*" in a) for k, n, a in self.access)

    def may(self, repository: str, action: str) -> bool:
        """Whether the caller may ``action`` (pull, push, delete, overwrite) on ``repository``."""
        return self.allows("repository", str(repository), action)

    @property
    def is_admin(self) -> bool:
        """Whether the token carries the Admin privilege (``registry:admin:*``)."""
        return self.allows("registry", "admin", "*")

    def may_view_feed(self, feed: str) -> bool:
        """Whether a ``feed:<feed>:pull`` or ``feed:*:pull`` entry lets the caller view ``feed``."""
        feeds = self.catalog_feeds()
        return feeds is None or feed in feeds

    def viewable_feeds(self) -> frozenset[str] | None:
        """The feeds the browse API may list for this caller; ``None`` means all (Admin)."""
        return None if self.is_admin else self.catalog_feeds()

    def catalog_feeds(self) -> frozenset[str] | None:
        """The feeds ``/v2/_catalog`` may list for this caller; ``None`` means all."""
        feeds = frozenset(n for k, n, a in self.access if k == "feed" and "pull" in a)
        return None if "*" in feeds else feeds


def _needed(request: Request, repository: str | None, action: Action) -> tuple[str, str, str] | None:
    path = request.url.path
    if path.startswith("/api/"):
        return ("registry", "admin", "*")
    if path.rstrip("/") == "/v2/_catalog":
        return ("registry", "catalog", "*")
    if repository:
        return ("repository", repository, action)
    return None


def _mount_source(request: Request, needed: tuple[str, str, str] | None) -> str | None:
    """The ``from`` repository of a mount POST (a valid name other than the target), else None."""
    params = request.query_params
    if needed is None or request.method != "POST" or "mount" not in params:
        return None
    if not request.url.path.rstrip("/").endswith("/blobs/uploads"):
        return None
    source = params.get("from", "")
    try:
        RepositoryName.parse(source)  # never echo an arbitrary string into the header
    except NameInvalid:
        return None
    return source if source != needed[1] else None


def _header_text(text: str) -> str:
    """``text`` with only the characters RFC 6750 §3 allows in ``error_description`` (no quote,
    no backslash, printable ASCII), at most 300 of them."""
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')[:300]


def _denial(caller: Caller, needed: tuple[str, str, str]) -> str:
    """Why ``caller`` may not do ``needed`` — naming only what it asked for, never what exists."""
    kind, name, action = needed
    what = {("registry", "admin"): "use the admin API", ("registry", "catalog"): "view this"}.get(
        (kind, name), f"{action} {name}"
    )
    if caller.subject == "anonymous":
        return f"authentication required to {what}: log in first (docker login HOST)"
    if (kind, name) == ("registry", "admin"):
        return (
            f"insufficient privileges: {caller.subject} lacks the Admin privilege the admin API needs"
            " (or the token was not asked for scope registry:admin:*)"
        )
    return f"insufficient privileges: {caller.subject} may not {what}"


def _challenge(
    request: Request, needed: tuple[str, str, str] | None, error: str | None, message: str
) -> Unauthorized:
    settings = request.app.state.resources.settings
    realm = external_base_url(request, settings) + "/token"
    parts = [f'realm="{realm}"', f'service="{settings.auth.service}"']
    detail = None
    if needed is not None:
        kind, name, action = needed
        # HEAD is how pushers check what exists: hint at push too, so clients that keep one
        # token per repository (oras-py) ask for both; the grant is still the intersection.
        actions = "pull,push" if action == "push" or request.method == "HEAD" else action
        scopes = [f"{kind}:{name}:{actions}"]
        detail = [{"Type": kind, "Name": name, "Action": action}]
        source = _mount_source(request, needed)
        if source is not None:
            scopes.append(f"repository:{source}:pull")
            detail.append({"Type": "repository", "Name": source, "Action": "pull"})
        parts.append(f'scope="{" ".join(scopes)}"')
    if error:
        parts.append(f'error="{error}"')
        parts.append(f'error_description="{_header_text(message)}"')
    return Unauthorized(message, detail=detail, headers={"WWW-Authenticate": "Bearer " + ",".join(parts)})


def _keys(request: Request) -> KeyCache:
    cache = getattr(request.app.state, "auth_key_cache", None)
    if cache is None:
        cache = request.app.state.auth_key_cache = KeyCache(request.app.state.resources.pool)
    return cache


async def authorize(request: Request, repository: str | None, action: Action) -> Caller:
    """Resolve the caller of ``request`` and check it may do ``action`` on ``repository``.

    Raises:
        berth_common.errors.Unauthorized: no, bad or insufficient token (with a Bearer challenge).
    """
    needed = _needed(request, repository, action)
    caller = await _verified(request, needed)
    if needed is not None and not caller.allows(*needed):
        raise _refused(request, needed, caller)
    return caller


async def _verified(request: Request, needed: tuple[str, str, str] | None) -> Caller:
    """The caller of ``request``'s bearer token. Raises ``Unauthorized`` (challenging for
    ``needed``) without a token or with an invalid one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _challenge(request, needed, None, "authentication required")
    try:
        claims = await verify(token.strip(), _keys(request), request.app.state.resources.settings.auth)
    except InvalidToken as exc:
        raise _challenge(request, needed, "invalid_token", str(exc)) from None
    return Caller.from_claims(claims)


def _refused(request: Request, needed: tuple[str, str, str], caller: Caller) -> Unauthorized:
    return _challenge(request, needed, "insufficient_scope", _denial(caller, needed))


async def authorize_view(
    request: Request, *, feed: str | None = None, repository: str | None = None
) -> Caller:
    """The caller of a read-only ``/api/`` route that shows what a feed holds (docs/SECURITY.md).

    ``repository``: needs ``repository:<name>:pull`` (View on its feed), as a registry pull does,
    or a feed entry for its feed; ``feed``: needs ``feed:<feed>:pull`` or ``feed:*:pull``, the
    entries a token for ``registry:catalog:*`` carries for the feeds its holder may view;
    neither: any valid token (the route filters what it lists by :meth:`Caller.viewable_feeds`).
    A token with the Admin privilege (``registry:admin:*``) may view everything. The challenge
    names the scope to ask for, so an unauthorised caller learns nothing about what exists.

    Raises:
        berth_common.errors.Unauthorized: no, bad or insufficient token (with a Bearer challenge).
    """
    if repository is not None:
        needed = ("repository", repository, "pull")
        feed = repository.split("/", 1)[0]
    else:
        needed = ("registry", "catalog", "*")
    caller = await _verified(request, needed)
    if caller.is_admin or (repository is not None and caller.allows(*needed)):
        return caller
    if feed is None or caller.may_view_feed(feed):  # feed None: the list, filtered by the route
        return caller
    raise _refused(request, needed, caller)


def require(action: Action) -> Any:
    """A FastAPI dependency: the route's caller, authorised for ``action`` on path ``name``.

    Used as a parameter default (``caller: Caller = require("pull")``), like ``Depends``, whose
    return type it shares.
    """

    async def dependency(request: Request) -> Caller:
        return await authorize(request, request.path_params.get("name"), action)

    return Depends(dependency)
