"""The request-body idle timeout: a client that stops sending a body mid-way fails its request.

A request body arrives as ASGI ``http.request`` messages. :func:`idle_receive` wraps an ASGI
``receive`` so that each wait for the next message of an unfinished body is bounded by
``http.body_idle_timeout_seconds``; when the client sends nothing for that long it raises
:class:`BodyStalled` — from ``receive()``, and so from ``request.stream()`` / ``request.body()``
iteration in whatever route reads the body (an upload sees it propagate out of the stream and
keeps none of that request's bytes). :class:`BodyIdleTimeout` applies it to every HTTP request of an app
(``berth_common.http.service_app``). The one error renderer (``berth_common.http.errors``) turns
``BodyStalled`` into a ``400`` with ``Connection: close``, so the server closes the connection
instead of waiting for the rest of the body.

Only the client's silence counts: the timer runs while the app waits in ``receive()``, never
while it works on the previous piece (storage writes, hashing). Once the body is complete,
``receive()`` (then used to wait for ``http.disconnect``) is passed through unbounded.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyStalled(Exception):
    """No piece of the request body arrived for ``seconds`` while the body was incomplete."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the request body stalled: nothing received for {seconds:g} s")


def idle_receive(receive: Receive, seconds: float) -> Receive:
    """``receive`` with each wait for an unfinished body bounded by ``seconds``.

    Raises (from the returned callable):
        BodyStalled: ``seconds`` passed without a message while more body was expected.
    """
    done = False

    async def bounded() -> Message:
        nonlocal done
        if done:
            return await receive()
        try:
            async with asyncio.timeout(seconds):
                message = await receive()
        except TimeoutError:
            raise BodyStalled(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return bounded


class BodyIdleTimeout:
    """Pure ASGI middleware: every HTTP request's ``receive`` goes through :func:`idle_receive`."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, idle_receive(receive, self.seconds), send)
