"""The Django middleware: :class:`agegate.AgeGateMiddleware` deciding for Django's requests.

The request is described to the ASGI gate as a scope (path, root path, headers, scheme), and
the gate runs on its own event loop thread (:mod:`agegate.syncloop`) under WSGI and ASGI alike,
so its store is used from one loop only. The gate either answers (screen, 403, 428, 503), and
its ASGI messages become the Django response, or passes: then the view runs here, in Django's
own thread or task, and on a signup path the gate's cookie is added to the view's response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers

from ..asgi.forms import MAX_SCREEN_BODY
from ..asgi.middleware import SAFE_METHODS
from ..asgi.middleware import AgeGateMiddleware as Gate
from ..decisions import NOTES_KEY, SCOPE_KEY
from ..errors import StoreUnavailable
from ..hook import SCOPE_ATTR, mark, unmark
from ..syncloop import loop_of
from .config import get_gate, middleware_options

__all__ = ["AgeGateMiddleware"]

#: Where the Django request's account id travels in the scope handed to the gate.
_ACCOUNT = "agegate.account"


def _account(scope: Any) -> str | None:
    account: str | None = scope.get(_ACCOUNT)
    return account


class AgeGateMiddleware:
    """Django middleware (sync and async) with the contract of :class:`agegate.AgeGateMiddleware`;
    configured by ``settings.AGEGATE`` (see :mod:`agegate.django`)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.gate = get_gate()
        self.asgi = Gate(_passed, gate=self.gate, subject=_account, **middleware_options())
        self.prefix = self.asgi.prefix
        #: Reads that pass without asking the gate: none in mode "all", where reads are gated too.
        self._passing = SAFE_METHODS if self.asgi.mode == "writes" else frozenset()
        self._loop = loop_of(self.gate)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._open_store()  # the server is starting: open the store now, not on a request

    def _open_store(self) -> None:
        # A store that is down may come back: requests that need it get 503 meanwhile.
        with contextlib.suppress(StoreUnavailable, OSError):
            self._loop.run(self.gate.store())

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if request.method in self._passing and self.prefix not in request.path:
            return self.get_response(request)
        exchange = _Exchange(request, _account_of(request, getattr(request, "user", None)))
        self._loop.run(exchange.run(self.asgi))
        if not exchange.passed():
            return exchange.response()
        notes = exchange.notes()
        token = mark(self.gate, notes)
        try:
            response = self.get_response(request)
        finally:
            unmark(token)
        return self._with_cookie(response, notes)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if request.method in self._passing and self.prefix not in request.path:
            return await get_response(request)
        auser = getattr(request, "auser", None)
        user = await auser() if auser is not None else None
        account = _account_of(None, user)
        session = getattr(request, "session", None)
        if account is None and session is not None:
            account = _account_of(None, None, await session.aget(SESSION_KEY))
        exchange = _Exchange(request, account)
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(exchange.run(self.asgi), self._loop.loop))
        if not exchange.passed():
            return exchange.response()
        notes = exchange.notes()
        token = mark(self.gate, notes)
        try:
            response = await get_response(request)
        finally:
            unmark(token)
        return self._with_cookie(response, notes)

    def _with_cookie(self, response: HttpResponseBase, notes: list[Any] | None) -> HttpResponseBase:
        """The view's response, with the gate's cookie for a decision made in a signup."""
        if notes:
            del response["Cache-Control"]
            for name, value in self.asgi.signup_headers(notes, ()):
                _set_header(response, name, value)
        return response


def _set_header(response: HttpResponseBase, name: bytes, value: bytes) -> None:
    """Set a header of the gate's on a Django response; its cookie goes into
    ``response.cookies``, where Django (and its test client) look for cookies."""
    if name == b"set-cookie":
        response.cookies.load(value.decode("latin-1"))
    elif name == b"vary":
        patch_vary_headers(response, [part.strip() for part in value.decode("latin-1").split(",")])
    else:
        response.headers[name.decode("latin-1")] = value.decode("latin-1")


def _account_of(request: HttpRequest | None, user: Any, account: Any = None) -> str | None:
    """The logged-in account: the user's key, or, when the user is gone (a purge deleted it),
    the key Django's session still holds for it (``account``, or read from ``request``)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.pk)
    session = getattr(request, "session", None)
    if account is None and session is not None:
        account = session.get(SESSION_KEY)
    return account if isinstance(account, str) and account else None


async def _passed(scope: Any, receive: Any, send: Any) -> None:
    """The gate's inner app: it only notes that the request may go on (see :class:`_Exchange`)."""
    scope["agegate.passed"] = True


class _Exchange:
    """One Django request as the ASGI gate sees it, and what the gate answered."""

    def __init__(self, request: HttpRequest, account: str | None) -> None:
        self.request = request
        self.scope = _scope(request, account)
        self.messages: list[MutableMapping[str, Any]] = []

    async def run(self, gate: Gate) -> None:
        await gate(self.scope, self.receive, self.send)

    async def receive(self) -> dict[str, Any]:
        # Only the screen reads a body, at most MAX_SCREEN_BODY bytes (one more shows it is too
        # long); off the gate's loop, since a WSGI body comes from the socket.
        body = await asyncio.to_thread(self.request.read, MAX_SCREEN_BODY + 1)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(message)

    def passed(self) -> bool:
        """Whether the gate let the request go on (then ``request`` is ready for the view)."""
        if not self.scope.get("agegate.passed"):
            return False
        # The view finds the decision as request.agegate, and gate.signup(scope=request) the
        # notes the gate will turn into a cookie.
        setattr(self.request, SCOPE_ATTR, self.scope)
        self.request.agegate = self.scope.get(SCOPE_KEY)
        return True

    def notes(self) -> list[Any] | None:
        notes: list[Any] | None = self.scope.get(NOTES_KEY)
        return notes

    def response(self) -> HttpResponse:
        """The gate's own answer as a Django response."""
        if not self.messages:
            return HttpResponse(status=400)  # the client went away while the screen read
        start = self.messages[0]
        body = b"".join(m.get("body", b"") for m in self.messages[1:])
        response = HttpResponse(body, status=start["status"])
        for name, value in start.get("headers", ()):
            if name.lower() != b"content-length":  # Django sets its own
                _set_header(response, name.lower(), value)
        return response


def _scope(request: HttpRequest, account: str | None) -> dict[str, Any]:
    """The ASGI scope the gate reads for ``request``: method, path and root path, the path as
    sent, headers, scheme, and the logged-in account."""
    meta = request.META
    headers: list[tuple[bytes, bytes]] = []
    for key, value in meta.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key
        else:
            continue
        if isinstance(value, str) and value:
            headers.append((name.replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
    root = request.path[: len(request.path) - len(request.path_info)]
    asgi = getattr(request, "scope", None)
    raw: bytes | None = asgi.get("raw_path") if isinstance(asgi, dict) else None
    if raw is None and isinstance(sent := meta.get("RAW_URI") or meta.get("REQUEST_URI"), str):
        raw = sent.encode("latin-1")
    port = meta.get("SERVER_PORT")
    return {
        "type": "http",
        "method": request.method,
        "path": request.path,
        "root_path": root,
        "raw_path": raw,
        "query_string": str(meta.get("QUERY_STRING", "")).encode("latin-1"),
        "headers": headers,
        "scheme": request.scheme,
        "server": (meta.get("SERVER_NAME", ""), int(port)) if str(port or "").isdigit() else None,
        _ACCOUNT: account,
    }
