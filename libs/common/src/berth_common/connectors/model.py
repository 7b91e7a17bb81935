"""A feed's connector as the services read it, and how a feed's image name maps upstream.

The api service owns connectors (events ``connector.added`` / ``connector.removed`` on stream
``feed:<name>``) and publishes them, passwords encrypted, in the read-only view
``api.v_feed_connectors``; both services read them from there (``feed_connectors``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
DOCKER_HUB = "https://registry-1.docker.io"
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


@dataclass(frozen=True)
class UpstreamUrl:
    """A connector's URL split: ``registry`` (``scheme://host[:port]``, no slash) and ``prefix``
    (repository path components every upstream name starts with, ``""`` for none)."""

    registry: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> UpstreamUrl:
        """``"http://host:5000/team"`` → ``("http://host:5000", "team")``. Docker Hub's names
        (``docker.io`` …) become ``https://registry-1.docker.io``.

        Raises:
            ValueError: not ``http(s)://host[:port][/path]``, credentials, a query or a
                fragment in it, or path components outside the repository-name grammar.
        """
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"connector URL {url[:200]!r} is not http(s)://HOST[:PORT][/PREFIX]")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("a connector URL carries no credentials, query or fragment (use --username)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"connector URL {url[:200]!r} has an invalid port") from None
        prefix = parts.path.strip("/")
        if prefix and not all(_COMPONENT.fullmatch(c) for c in prefix.split("/")):
            raise ValueError(f"connector URL path {prefix[:200]!r} is not a repository name prefix")
        if parts.hostname in _HUB_HOSTS:
            return cls(DOCKER_HUB, prefix)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return cls(f"{parts.scheme}://{host}" + (f":{port}" if port else ""), prefix)

    def __str__(self) -> str:
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry


@dataclass(frozen=True)
class Connector:
    """One connector of ``feed``, in the order the feed tries them (``position``).

    ``password_encrypted`` is the Fernet token (``secrets.SecretBox`` decrypts it); it is left
    out of ``repr`` so it never reaches a log line. ``incarnation``: the life of the feed the
    connector was read in (docs/ARCHITECTURE.md, "Feed incarnations"); what a fetch through it
    brings is recorded only while the feed still has that incarnation.
    """

    id: str
    feed: str
    position: int
    url: str
    username: str | None = None
    password_encrypted: str | None = field(default=None, repr=False)
    namespace: str | None = None
    tag_ttl_seconds: int = 300
    cache: bool = True
    incarnation: str | None = None

    @property
    def upstream(self) -> UpstreamUrl:
        """The parsed URL."""
        return UpstreamUrl.parse(self.url)

    def upstream_name(self, image: str) -> str:
        """The upstream repository of the feed's ``image`` (the name after the feed):
        the namespace is put before a single-component name, then the URL's prefix.

        ``image="busybox"``, namespace ``library`` → ``"library/busybox"``; prefix ``team`` and
        ``image="tools/app"`` → ``"team/tools/app"``.
        """
        name = f"{self.namespace}/{image}" if self.namespace and "/" not in image else image
        prefix = self.upstream.prefix
        return f"{prefix}/{name}" if prefix else name

    def origin(self, image: str) -> str:
        """Where ``image`` comes from: ``<registry>/<upstream name>`` (recorded in events)."""
        return f"{self.upstream.registry}/{self.upstream_name(image)}"


_SELECT = (
    "SELECT id::text AS id, feed, incarnation::text AS incarnation, position, url, username,"
    " password_encrypted, namespace, tag_ttl_seconds, cache FROM api.v_feed_connectors"
)


async def feed_connectors(db: Any, feed: str) -> list[Connector]:
    """The connectors of ``feed`` in the order they are tried (none: an empty list); ``db`` is
    an asyncpg pool or connection."""
    rows = await db.fetch(f"{_SELECT} WHERE feed = $1 ORDER BY position", feed)
    return [Connector(**dict(r)) for r in rows]
