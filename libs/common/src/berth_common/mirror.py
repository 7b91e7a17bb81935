"""Mirror mode: names without a feed are served from the default feed (docs/ARCHITECTURE.md,
"Mirror mode").

The docker daemon's ``registry-mirrors`` and many tools send Docker Hub's names unchanged
(``/v2/library/busybox/…``, ``/v2/pause/…``). With ``default_feed`` set, a name is resolved so:

- its first component names a feed (or is the default feed itself) → that feed, as always;
- otherwise → the default feed, the whole name being the image (``library/busybox`` is
  ``<default>/library/busybox``; ``pause`` is ``<default>/pause``).

**A first component that is both a feed and an image path of the default feed addresses the
feed**: the feed grammar never changes meaning, and an image of the default feed whose first
component is a feed's name stays reachable as ``<default>/<name>``. Creating a feed therefore
hides such names of the default feed (``berth feed create library`` would take over
``library/busybox``); choose feed names that are not Docker Hub namespaces.

The client's own name stays the name of its URLs and token scopes (``RepositoryName.addressed``):
docker asks for ``repository:library/busybox:pull``, and the token service resolves the same
name the same way to find the feed whose privileges apply. Without ``default_feed`` nothing
is looked up: names parse as ``FEED/IMAGE`` exactly as before.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from berth_common.oci.reference import RepositoryName, check_name


async def resolve_repository(db: Any, name: str, default_feed: str | None) -> RepositoryName:
    """The repository ``name`` addresses (see the module docstring); ``db`` is an asyncpg pool
    or connection used only when ``default_feed`` is set and the first component may be an image.

    Raises:
        NameInvalid: ``name`` breaks the grammar, or (no default feed) has one component.
    """
    if default_feed is None:
        return RepositoryName.parse(name)
    check_name(name)
    first, sep, _ = name.partition("/")
    if sep and (first == default_feed or await _is_feed(db, first)):
        return RepositoryName.parse(name)
    mirrored = RepositoryName.parse(f"{default_feed}/{name}")
    return replace(mirrored, addressed=name)


async def _is_feed(db: Any, name: str) -> bool:
    return bool(await db.fetchval("SELECT true FROM api.v_feeds WHERE name = $1", name))
