"""Quart: the gate around ``app.asgi_app``, Quart's own place for ASGI middleware.

Wrapping ``app.asgi_app`` (not the app object) keeps the gate in front under every way Quart
runs: ``hypercorn``/``uvicorn app:app``, ``quart run`` and ``app.test_client()``; the gate owns
the lifespan, so its store opens and closes with the app::

    AgeGate(app, gate, signup_paths=["/signup"], subject=session_subject(app, "user_id"))

Needs the optional extra ``agegate[quart]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from itsdangerous import BadSignature
from quart import Quart

from .asgi.cookie import read_cookie
from .asgi.middleware import AgeGateMiddleware
from .gate import AgeGate as Gate
from .subjects import account_id

__all__ = ["AgeGate", "session_subject"]


class AgeGate:
    """The Quart extension: ``AgeGate(app, gate, **options)`` (options are
    :class:`~agegate.AgeGateMiddleware`'s); ``.middleware`` is the installed gate."""

    def __init__(self, app: Quart, gate: Gate, **options: Any) -> None:
        inner: Any = app.asgi_app  # Quart's scope types are narrower than ASGI's mappings
        self.middleware = AgeGateMiddleware(inner, gate=gate, **options)
        app.asgi_app = self.middleware  # type: ignore[method-assign,assignment]
        app.extensions["agegate"] = self


def session_subject(app: Quart, key: str = "user_id") -> Callable[[Mapping[str, Any]], str | None]:
    """A ``subject=`` reading ``session[key]`` of Quart's signed-cookie session, with the app's
    own session interface (key, salt, lifetime): Quart opens the session only after the gate
    has decided."""
    interface = app.session_interface

    def subject(scope: Mapping[str, Any]) -> str | None:
        signer = interface.get_signing_serializer(app)
        if signer is None:
            return None  # no SECRET_KEY: Quart has no sessions either
        name = interface.get_cookie_name(app)
        header = "; ".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie")
        token = read_cookie(header, name) if header else None
        if not token:
            return None
        try:
            data = signer.loads(token, max_age=int(app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return None
        return account_id(data.get(key)) if isinstance(data, dict) else None

    return subject
