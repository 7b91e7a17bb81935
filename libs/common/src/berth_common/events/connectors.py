"""Events of a feed's connectors (stream ``feed:<name>``, owned by the api service).

A connector makes a feed a pull-through cache of another registry (docs/ARCHITECTURE.md,
"Connectors"). Upstream passwords are never in an event in clear: ``password_encrypted`` is a
Fernet token made with the key of ``connectors.key`` (``berth_common.connectors.secrets``).
"""

from __future__ import annotations

from berth_common.events.base import Event
from berth_common.events.catalogue import register


@register
class ConnectorAdded(Event):
    """``feed`` got a connector, tried after the ones it already has.

    Attributes:
        connector_id: a UUID naming the connector within Berth.
        url: the upstream registry and an optional repository prefix
            (``https://registry-1.docker.io``, ``http://berth.example/mirror``).
        username: the upstream login, or ``None`` (anonymous).
        password_encrypted: the upstream password or token as a Fernet token, or ``None``.
        namespace: prefixed to single-component image names upstream (``library``: Docker
            Hub's rule that ``busybox`` is ``library/busybox``), or ``None``.
        tag_ttl_seconds: how long a tag fetched upstream is served before a pull revalidates it.
        cache: whether content fetched upstream is stored (``False``: served through only).
    """

    type_name = "connector.added"
    stream_template = "feed:{feed}"
    feed: str
    connector_id: str
    url: str
    username: str | None = None
    password_encrypted: str | None = None
    namespace: str | None = None
    tag_ttl_seconds: int = 300
    cache: bool = True


@register
class ConnectorRemoved(Event):
    """``feed`` no longer uses the connector ``connector_id`` (its cached content stays)."""

    type_name = "connector.removed"
    stream_template = "feed:{feed}"
    feed: str
    connector_id: str
