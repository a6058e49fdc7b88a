"""A request body in chunks, from any framework's request object, for the signup helpers.

Starlette, FastAPI and Litestar requests stream their body (``request.stream()``); Quart's
request iterates over ``request.body``; Django's is a file (``request.read``). Anything else is
refused with a message that names the framework-neutral call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import ClientDisconnect

from .errors import ClientGone, ConfigurationError

__all__ = ["ClientGone", "body_chunks", "check_readable"]

_CHUNK = 16 * 1024


def _kind(request: Any) -> str | None:
    if hasattr(request, "META") and callable(getattr(request, "read", None)):
        return "django"
    if request.__class__.__module__.startswith("quart."):  # through Quart's proxy too
        return "quart"
    if callable(getattr(request, "stream", None)) and hasattr(request, "headers"):
        return "stream"
    return None


def check_readable(request: Any) -> None:
    """Raise :class:`ConfigurationError` unless :func:`body_chunks` can read ``request``."""
    if _kind(request) is None:
        raise ConfigurationError(
            f"the signup helpers read Starlette, FastAPI, Litestar, Quart and Django requests, not a "
            f"{type(request).__name__}: read the form yourself and call "
            "await gate.signup(fields, subject=..., scope=request)"
        )


async def body_chunks(request: Any, limit: int) -> AsyncGenerator[bytes, None]:
    """The body of ``request`` in chunks; stops asking for more after ``limit`` bytes (the
    caller refuses that much anyway). Raises :class:`ClientGone`."""
    check_readable(request)
    kind = _kind(request)
    if kind == "django":
        # Django has the body at hand (ASGI) or reads it from the socket on demand (WSGI),
        # bounded by the request's Content-Length.
        seen = 0
        while seen < limit and (chunk := request.read(min(_CHUNK, limit - seen))):
            seen += len(chunk)
            yield chunk
        return
    source = request.body if kind == "quart" else request.stream()
    try:
        async for chunk in source:
            if chunk:
                yield bytes(chunk)
    except ClientDisconnect:
        raise ClientGone() from None
