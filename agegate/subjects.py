"""Ready ``subject=`` readers: the logged-in account id from what the app's own session or
authentication middleware put in the ASGI scope, with nothing decoded by hand.

Starlette's ``SessionMiddleware`` and Litestar's session middleware put the session in
``scope["session"]``; Starlette's ``AuthenticationMiddleware`` and Litestar's authentication
middleware put the user in ``scope["user"]``. The gate must run *inside* them (after them, on
the way in), so the reader finds what they put there; a reader that finds no session or user
key at all raises :class:`~agegate.ConfigurationError` (a 500, never a pass) rather than treat
everyone as logged out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["account_id", "session_subject", "user_subject"]


def account_id(value: Any) -> str | None:
    """An account id as the gate takes it: a non-empty string (an ``int`` primary key is
    written in decimal), or ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def session_subject(key: str = "user_id") -> Callable[[Mapping[str, Any]], str | None]:
    """A ``subject=`` reading ``scope["session"][key]`` (Starlette, FastAPI, Litestar)."""

    def read(session: Any) -> str | None:
        return account_id(session.get(key)) if isinstance(session, Mapping) else None

    return _reader(
        "session_subject",
        "session",
        "the session middleware (add it before SessionMiddleware with add_middleware)",
        read,
    )


def user_subject(attribute: str = "id") -> Callable[[Mapping[str, Any]], str | None]:
    """A ``subject=`` reading the logged-in user's ``attribute`` from ``scope["user"]``
    (Starlette's ``AuthenticationMiddleware``, Litestar's authentication middleware); a user
    whose ``is_authenticated`` is false counts as nobody."""

    def read(user: Any) -> str | None:
        if user is None or not getattr(user, "is_authenticated", True):
            return None
        if isinstance(user, Mapping):
            return account_id(user.get(attribute))
        return account_id(getattr(user, attribute, None))

    return _reader("user_subject", "user", "the authentication middleware", read)


def _reader(
    name: str, key: str, middleware: str, read: Callable[[Any], str | None]
) -> Callable[[Mapping[str, Any]], str | None]:
    """A ``subject=`` giving ``read(scope[key])``; a scope without ``key`` means the gate runs
    outside the ``middleware`` that sets it: :class:`~agegate.ConfigurationError`, never a pass."""

    def subject(scope: Mapping[str, Any]) -> str | None:
        if key not in scope:
            raise ConfigurationError(
                f"subject={name}(...) found no {key} in the request: put the age gate inside {middleware}"
            )
        return read(scope[key])

    return subject
