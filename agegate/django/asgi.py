"""Django under ASGI: the server's lifespan opens and closes the gate's store.

Django's ASGI handler refuses the lifespan protocol, and a server such as uvicorn ends with the
signal it was stopped by, so no exit hook runs: ``asgi_application()`` answers the lifespan
itself (Django is still offered it first) and closes the store on the gate's loop at shutdown::

    # asgi.py
    application = agegate.django.asgi_application()   # instead of get_asgi_application()
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from django.core.asgi import get_asgi_application
from starlette.types import ASGIApp, Receive, Scope, Send

from ..asgi.lifespan import run_lifespan
from ..syncloop import loop_of
from .config import get_gate

__all__ = ["asgi_application"]


def asgi_application() -> ASGIApp:
    """Django's ASGI application, with the gate's store opened and closed by the lifespan."""
    django_app = get_asgi_application()
    gate = get_gate()
    loop = loop_of(gate).loop

    def on_gate_loop(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        # The store lives on the gate's own loop thread (agegate.syncloop), as for every request.
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def opening() -> None:
        await on_gate_loop(gate.store())

    async def closing() -> None:
        await on_gate_loop(gate.aclose())

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(django_app, scope, receive, send, opening=opening, closing=closing)
        else:
            await django_app(scope, receive, send)

    return application
