"""The apps the server benchmarks serve with uvicorn (``uvicorn --factory bench.apps:NAME``).

Every one answers ``POST /checkout`` (and ``GET``) with ``ok``. The gated ones take their keys
from ``AGEGATE_SECRET_KEYS`` and their SQLite store from ``AGEGATE_BENCH_STORE``, so that the
load client can seal cookies the server opens. ``gated_signup`` is what an app that uses the gate
has: the middleware and a signup route with the signup hook.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

SESSION_SECRET = "bench-secret"


async def checkout(request: Request) -> Response:
    return PlainTextResponse("ok")


def _app(*middleware: Middleware, routes: tuple[Route, ...] = ()) -> Starlette:
    return Starlette(
        routes=[Route("/checkout", checkout, methods=["GET", "POST"]), *routes], middleware=list(middleware)
    )


class NoOp:
    """The cheapest possible pure ASGI middleware: the floor of any middleware's cost."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def bare() -> Starlette:
    """The app alone."""
    return _app()


def noop() -> Starlette:
    """The app behind :class:`NoOp`."""
    return _app(Middleware(NoOp))


def _gate() -> Any:
    from agegate import AgeGate, Keyring

    return AgeGate(keys=Keyring.from_env(), store=os.environ.get("AGEGATE_BENCH_STORE", "memory://"))


def gated() -> Starlette:
    """The app behind the gate, as ``bench/middleware.py`` has it (every path protected)."""
    from agegate import AgeGateMiddleware

    return _app(Middleware(AgeGateMiddleware, gate=_gate()))


def gated_signup() -> Starlette:
    """What an app that uses the gate has: the middleware, and a signup route with the signup
    hook (for the memory a server takes at start)."""
    from agegate import AgeGateMiddleware, signup_form

    gate = _gate()

    async def signup(request: Request) -> Response:
        fields = await signup_form(
            request, gate, subject=request.query_params["id"], identifier_fields=("email",)
        )
        return PlainTextResponse(fields.get("email", ""))

    return _app(
        Middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"]),
        routes=(Route("/signup", signup, methods=["POST"]),),
    )


def sessions() -> Starlette:
    """The app behind Starlette's SessionMiddleware (signed cookies), for reference."""
    from starlette.middleware.sessions import SessionMiddleware

    return _app(Middleware(SessionMiddleware, secret_key=SESSION_SECRET))
