"""The gate's part of the ASGI lifespan: open the store at startup, close it at shutdown.

The app's own lifespan runs as before, inside: its ``async with gate`` finds the store already
open (opening is idempotent) and closes it at shutdown, after which the gate's close does
nothing. An app that refuses lifespan (Django's ASGI handler raises; some apps return at once)
is left alone: the gate then answers the server's lifespan messages itself, so the store is
still opened and closed exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StoreUnavailable

__all__ = ["run_lifespan"]

_log = logging.getLogger("agegate.asgi")


async def run_lifespan(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    opening: Callable[[], Awaitable[Any]],
    closing: Callable[[], Awaitable[None]],
) -> None:
    """Serve one lifespan scope for ``app``, calling ``opening`` at startup (the gate's
    ``store``) and ``closing`` at shutdown (its ``aclose``; also when the app's startup fails)."""
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    try:
        await opening()
    except (StoreUnavailable, OSError) as exc:
        # The store may come back: requests that need it get 503 meanwhile, reads work.
        _log.warning("the age gate's store could not be opened at startup: %s", type(exc).__name__)
    except Exception as exc:
        # A store that cannot be used at all (a keyring that does not fit it, a bad URL): the
        # server must not start serving as if the gate worked.
        await send({"type": "lifespan.startup.failed", "message": f"agegate: {exc}"})
        return

    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message | None] = asyncio.Queue()

    async def app_send(message: Message) -> None:
        await from_app.put(message)

    async def run_app() -> None:
        try:
            await app(scope, to_app.get, app_send)
        except Exception as exc:  # an app that refuses lifespan raises (Django: ValueError)
            _log.debug("the app does not take part in the lifespan: %r", exc)
        finally:
            await from_app.put(None)

    task = asyncio.ensure_future(run_app())
    try:
        await to_app.put({"type": "lifespan.startup"})
        answer = await from_app.get()
        if answer is not None and answer["type"] == "lifespan.startup.failed":
            await closing()
            await send(answer)
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        shutdown: Message | None = None
        if answer is not None:  # the app takes part: it shuts down first
            await to_app.put({"type": "lifespan.shutdown"})
            shutdown = await from_app.get()
        await closing()
        if shutdown is not None and shutdown["type"] == "lifespan.shutdown.failed":
            await send(shutdown)
        else:
            await send({"type": "lifespan.shutdown.complete"})
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
