"""Connector commands: add and remove a feed's connectors (events on stream ``feed:<name>``).

Part of the feed aggregate (docs/ARCHITECTURE.md, "Connectors"): ``connector.added`` and
``connector.removed`` are appended under the feed row's lock, like ``feed.updated``. A password
enters the event only as a Fernet token (``berth_common.connectors.secrets``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from berth_api.projections.tables import project
from berth_common.connectors.model import Connector, UpstreamUrl, feed_connectors
from berth_common.connectors.secrets import SecretBox, SecretsUnavailable
from berth_common.errors import NameInvalid, NameUnknown, RegistryError
from berth_common.events import ConnectorAdded, ConnectorRemoved, Metadata
from berth_common.eventstore import EventStore, UnitOfWork, run_with_retry
from berth_common.oci.reference import check_name

MAX_CONNECTORS = 20


class BadRequest(RegistryError):
    """400 BAD_REQUEST (Berth's admin API): a connector that cannot be added as given."""

    code, status, default_message = "BAD_REQUEST", 400, "invalid connector"


class NotFound(RegistryError):
    """404 NOT_FOUND (Berth's admin API): the feed has no such connector."""

    code, status, default_message = "NOT_FOUND", 404, "no such connector"


@dataclass(frozen=True)
class NewConnector:
    """What ``berth connector add`` / ``POST /api/feeds/<feed>/connectors`` gives.

    ``password`` is in clear here and nowhere after ``add_connector``; ``tag_ttl_seconds`` ≥ 0
    (0: revalidate every pull by tag).
    """

    url: str
    username: str | None = None
    password: str | None = None
    namespace: str | None = None
    tag_ttl_seconds: int = 300
    cache: bool = True


def _checked(new: NewConnector) -> str:
    """The URL, normalised. Raises ``BadRequest`` for a bad URL, namespace or credentials."""
    try:
        url = str(UpstreamUrl.parse(new.url))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if new.namespace is not None:
        try:
            check_name(new.namespace)
        except NameInvalid:
            raise BadRequest(f"namespace {new.namespace[:100]!r} is not a repository name prefix") from None
    if new.password and not new.username:
        raise BadRequest("a password needs a username (--username)")
    if new.tag_ttl_seconds < 0:
        raise BadRequest("tag_ttl_seconds must be 0 or more")
    return url


async def add_connector(
    store: EventStore, box: SecretBox, feed: str, new: NewConnector, metadata: Metadata | None = None
) -> str:
    """Append ``connector.added`` to feed ``feed``; returns the connector's id.

    Raises:
        NameUnknown: no such feed.
        BadRequest: a bad URL, namespace or TTL, too many connectors, or a password and no key
            to encrypt it with (``connectors.key``).
    """
    url = _checked(new)
    try:
        secret = box.encrypt(new.password) if new.password else None
    except SecretsUnavailable as exc:
        raise BadRequest(str(exc)) from None
    connector_id = str(uuid.uuid4())

    async def work(uow: UnitOfWork) -> None:
        await _lock_feed(uow, feed)
        if len(await feed_connectors(uow.conn, feed)) >= MAX_CONNECTORS:
            raise BadRequest(f"feed {feed!r} has {MAX_CONNECTORS} connectors already")
        event = ConnectorAdded(
            feed=feed, connector_id=connector_id, url=url, username=new.username or None,
            password_encrypted=secret, namespace=new.namespace or None,
            tag_ttl_seconds=new.tag_ttl_seconds, cache=new.cache,
        )  # fmt: skip
        await uow.emit(event)

    await run_with_retry(store, work, projector=project, metadata=metadata)
    return connector_id


async def remove_connector(store: EventStore, feed: str, which: str, metadata: Metadata | None = None) -> str:
    """Append ``connector.removed`` for the connector ``which`` names (its id, or its URL);
    returns its id. Content it cached stays. Raises ``NameUnknown`` (feed), ``NotFound``."""

    async def work(uow: UnitOfWork) -> str:
        await _lock_feed(uow, feed)
        found = _match(await feed_connectors(uow.conn, feed), which)
        await uow.emit(ConnectorRemoved(feed=feed, connector_id=found.id))
        return found.id

    removed = await run_with_retry(store, work, projector=project, metadata=metadata)
    return removed


def _match(connectors: list[Connector], which: str) -> Connector:
    for connector in connectors:
        if which in (connector.id, connector.url):
            return connector
    try:
        url = str(UpstreamUrl.parse(which))
    except ValueError:
        url = None
    for connector in connectors:
        if url == connector.url:
            return connector
    raise NotFound(f"no connector {which[:200]!r} in this feed")


async def _lock_feed(uow: UnitOfWork, feed: str) -> None:
    if not await uow.conn.fetchval("SELECT 1 FROM api.feeds WHERE name = $1 FOR UPDATE", feed):
        raise NameUnknown(f"feed {feed!r} does not exist")
