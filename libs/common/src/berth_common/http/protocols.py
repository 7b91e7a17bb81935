"""Berth's uvicorn HTTP/1.1 protocol classes: zero-copy sends plus a request-head deadline.

uvicorn's own ``timeout_keep_alive`` is restarted by every byte that arrives and is not armed
on a fresh connection at all, so a client that trickles a request head one byte at a time (or
opens a connection and sends nothing) holds a connection, and its memory, for as long as it
likes. Here every connection has a **head deadline**: from the moment it opens, and again from
the end of each response, the next request head must be complete within
``http.header_timeout_seconds`` (settings; default 10 s). When the deadline passes the
connection is closed — after a ``408`` with an OCI error body if part of a head had come, quietly
if nothing had. A request being served is never timed by this (its body has its own idle timeout,
``berth_common.http.bodies``). Pipelined requests queued behind a response keep working: their
heads were complete when they were parsed.

Server wiring (both loops are supported; uvloop measured fastest)::

    from berth_common.http.protocols import uvicorn_http_protocol
    uvicorn.Config(app, http=uvicorn_http_protocol("httptools"), loop="uvloop")
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from berth_common.http.zerocopy import ZeroCopyH11Protocol, ZeroCopyHttpToolsProtocol

__all__ = ["BerthH11Protocol", "BerthHttpToolsProtocol", "HeadDeadline", "uvicorn_http_protocol"]

_log = logging.getLogger(__name__)


@cache
def configured_header_timeout() -> float:
    """``http.header_timeout_seconds`` of this process's settings (read once)."""
    from berth_common.settings import Settings

    return Settings().http.header_timeout_seconds


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "errors": [
                {"code": "REQUEST_TIMEOUT", "message": f"request head not complete within {seconds:g} s"}
            ]
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadDeadline:
    """One connection's deadline for a complete request head.

    ``arm()`` starts (or restarts) it; ``cancel()`` stops it (a head is complete, or the
    connection is gone); ``saw_bytes()`` notes that part of the next head came. When it passes,
    ``expire(partial)`` is called once, ``partial`` telling whether any byte had come.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, expire: Callable[[bool], None]
    ) -> None:
        self.loop, self.seconds, self.expire = loop, seconds, expire
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False

    def arm(self) -> None:
        """Start the deadline from now (replacing a running one)."""
        self.cancel()
        self._partial = False
        self._timer = self.loop.call_later(self.seconds, self._fire)

    def cancel(self) -> None:
        """Stop the deadline, if running."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def saw_bytes(self) -> None:
        """Bytes arrived; while the deadline runs they belong to the next request head."""
        if self._timer is not None:
            self._partial = True

    def _fire(self) -> None:
        self._timer = None
        self.expire(self._partial)


def _expire(protocol: Any, partial: bool) -> None:
    """Close ``protocol``'s connection whose head deadline passed (``408`` first if ``partial``)."""
    transport: asyncio.Transport = protocol.transport
    if transport.is_closing():
        return
    if partial:
        transport.write(_timeout_response(protocol.head_deadline.seconds))
    _log.debug(
        "request head not complete in %.1fs; closing %s", protocol.head_deadline.seconds, protocol.client
    )
    transport.close()


class BerthHttpToolsProtocol(ZeroCopyHttpToolsProtocol):
    """uvicorn's httptools protocol with zero-copy sends and the head deadline."""

    header_timeout: float | None = None  # seconds; None: ``http.header_timeout_seconds``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seconds = self.header_timeout or configured_header_timeout()
        self.head_deadline = HeadDeadline(self.loop, seconds, lambda partial: _expire(self, partial))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_deadline.arm()

    def data_received(self, data: bytes) -> None:
        self.head_deadline.saw_bytes()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.head_deadline.cancel()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if not self.pipeline:  # else the next request's head is already complete
            self.head_deadline.arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_deadline.cancel()
        super().connection_lost(exc)


class BerthH11Protocol(ZeroCopyH11Protocol):
    """uvicorn's h11 protocol with zero-copy sends and the head deadline."""

    header_timeout: float | None = None  # seconds; None: ``http.header_timeout_seconds``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seconds = self.header_timeout or configured_header_timeout()
        self.head_deadline = HeadDeadline(self.loop, seconds, lambda partial: _expire(self, partial))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_deadline.arm()

    def data_received(self, data: bytes) -> None:
        self.head_deadline.saw_bytes()
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # h11 parsed a complete request head
            self.head_deadline.cancel()

    def on_response_complete(self) -> None:
        self.head_deadline.arm()  # cancelled again if a pipelined head is already complete
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_deadline.cancel()
        super().connection_lost(exc)


def uvicorn_http_protocol(name: str = "httptools") -> type[asyncio.Protocol]:
    """The class to pass as ``uvicorn.Config(http=...)``: zero-copy blob GETs and the head deadline.

    Args:
        name: ``"httptools"``, ``"h11"`` or ``"auto"`` (httptools when importable).

    Raises:
        ValueError: any other name (uvicorn's HTTP/2 has no support here).
    """
    if name == "auto":
        name = "httptools" if AutoHTTPProtocol is httptools_impl.HttpToolsProtocol else "h11"
    if name == "httptools":
        return BerthHttpToolsProtocol
    if name == "h11":
        return BerthH11Protocol
    raise ValueError(f"no Berth protocol for uvicorn http={name!r}")
