"""Litestar: a plugin that puts the gate inside Litestar's own middleware list and routes.

Litestar runs its middleware only for requests that match a route, so the plugin registers the
screen's path as a route of its own (the gate answers it before the route is reached), appends
the gate *after* the middleware already configured (a session middleware included, so
``subject=session_subject(...)`` reads the session), and opens and closes the gate's store with
the app::

    app = Litestar(route_handlers=[...], middleware=[session.middleware],
                   plugins=[AgeGatePlugin(gate, signup_paths=["/signup"],
                                          subject=session_subject("user_id"))])

Options are :class:`~agegate.AgeGateMiddleware`'s. Needs the optional extra ``agegate[litestar]``.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, asgi
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPlugin
from litestar.types import Receive, Scope, Send

from .asgi.middleware import AgeGateMiddleware
from .errors import ConfigurationError
from .gate import AgeGate
from .subjects import session_subject, user_subject

__all__ = ["AgeGatePlugin", "session_subject", "user_subject"]


class AgeGatePlugin(InitPlugin):
    """Installs :class:`~agegate.AgeGateMiddleware` in a Litestar app (see the module)."""

    __slots__ = ("gate", "options", "prefix")

    def __init__(self, gate: AgeGate, **options: Any) -> None:
        if not isinstance(gate, AgeGate):
            raise ConfigurationError("gate must be an AgeGate")
        # Checked now, not when the app first builds its middleware.
        AgeGateMiddleware(_unreachable, gate=gate, **options)
        self.gate = gate
        self.options = options
        self.prefix: str = options.get("prefix", "/agegate")

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the screen's route, the gate (last: inside every middleware already listed) and
        the store's opening and closing."""

        @asgi(self.prefix, is_mount=False, include_in_schema=False, copy_scope=True)
        async def screen(scope: Scope, receive: Receive, send: Send) -> None:
            # The gate answers every request for its screen; nothing else gets here.
            not_found: Any = Response(content=None, status_code=404)
            await not_found(scope, receive, send)

        app_config.route_handlers.append(screen)
        middleware: Any = AgeGateMiddleware  # Litestar's scope types are narrower than ASGI's mappings
        app_config.middleware.append(DefineMiddleware(middleware, gate=self.gate, **self.options))
        app_config.on_startup.append(self.gate.store)
        app_config.on_shutdown.append(self.gate.aclose)
        return app_config


async def _unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")  # pragma: no cover
