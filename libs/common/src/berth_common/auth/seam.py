"""The authorisation seam used by every ``/v2/`` route (see the package docstring)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Depends, Request

Action = Literal["pull", "push", "delete", "*"]


@dataclass(frozen=True)
class Caller:
    """The resolved caller: ``subject`` (user name, ``api`` key id or ``anonymous``), its grants."""

    subject: str = "anonymous"
    actions: frozenset[str] = field(default_factory=lambda: frozenset({"pull", "push", "delete", "*"}))


async def authorize(request: Request, repository: str | None, action: Action) -> Caller:
    """Resolve the caller of ``request`` and check it may do ``action`` on ``repository``.

    Raises:
        berth_common.errors.Unauthorized: no or bad credentials (with a Bearer challenge).
        berth_common.errors.Denied: authenticated, but not allowed.
    Today every caller is anonymous and allowed (the auth service is a separate issue).
    """
    return Caller()


def require(action: Action) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the route's caller, authorised for ``action`` on path ``name``."""

    async def dependency(request: Request) -> Caller:
        return await authorize(request, request.path_params.get("name"), action)

    return Depends(dependency)  # type: ignore[no-any-return]
