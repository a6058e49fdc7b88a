"""AgeGateMiddleware: a pure ASGI gate in front of any app.

Reading stays open; providing data or transacting (unsafe methods, websockets) on a protected
path needs a screen result. The order of :meth:`AgeGateMiddleware.__call__`, cheapest first: pass
lifespan, serve the screen, let safe methods through without parsing any cookie, let unprotected
paths through, and only then read the sealed cookie and the logged-in account. A blocked request
is answered before its body is read and before the app is called; an allowed one is handed on
with the original ``receive``, so uploads stream through unbuffered.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ConfigurationError, KeyringError, StoreError, StoreUnavailable
from ..gate import NOTES_KEY, SCOPE_KEY, AgeGate, Decision
from .answers import Headers, close_websocket, respond
from .cookie import UNDER_AGE, GateCookie
from .endpoints import Screen, screen_headers
from .origin import OriginRule
from .pages import Pages, json_body, screen_url
from .paths import OPEN, SIGNUP, PathRules, readings, route_path, safe_next

__all__ = ["SAFE_METHODS", "AgeGateMiddleware", "SubjectFunc"]

SubjectFunc = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]

_log = logging.getLogger("agegate.asgi")
#: Retry-After, in seconds, when the store cannot be used until someone mends it.
_BROKEN_RETRY_AFTER = 60
#: Methods that only read; they always pass.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AgeGateMiddleware:
    """Blocks unsafe requests from visitors under the gate's minimum age, and serves the screen.

    ``protect``, ``exempt`` and ``signup_paths`` are path patterns (``"/checkout/*"``);
    ``protect=None`` protects every path; the screen's ``prefix`` is always exempt. ``subject``
    maps the ASGI scope to the logged-in account id (or ``None``), plain or async; an account's
    stored attestation then counts as well as the browser's cookie; while the gate's store cannot
    answer (:class:`~agegate.StoreUnavailable`), a request that needs that attestation gets
    ``503 {"error": "store_unavailable"}`` with ``Retry-After``, and the app is not called.
    ``secure_cookies=False`` drops ``Secure`` and the ``__Host-`` prefix, for plain-http
    development only. ``pages`` renders the HTML (see :class:`~agegate.Pages`). ``cookie_name``
    names the gate's cookie (default: a name of its own derived from the gate's key,
    :func:`agegate.asgi.cookie.cookie_name`). ``origins`` (the app's public origins,
    ``["https://shop.example"]``) and ``trust_forwarded_host`` (the proxy's ``X-Forwarded-Host``)
    are for the cross-site rule behind a proxy (:class:`agegate.asgi.origin.OriginRule`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        gate: AgeGate,
        prefix: str = "/agegate",
        protect: Sequence[str] | None = None,
        exempt: Sequence[str] = (),
        signup_paths: Sequence[str] = (),
        subject: SubjectFunc | None = None,
        secure_cookies: bool = True,
        pages: Pages | None = None,
        cookie_name: str | None = None,
        origins: Sequence[str] = (),
        trust_forwarded_host: bool = False,
    ) -> None:
        if not isinstance(gate, AgeGate):
            raise ConfigurationError("gate must be an AgeGate")
        if not isinstance(prefix, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
            raise ConfigurationError("prefix must be a path such as '/agegate' (no trailing slash)")
        if subject is not None and not callable(subject):
            raise ConfigurationError("subject must be a function of the ASGI scope, or None")
        if not isinstance(secure_cookies, bool):
            raise ConfigurationError("secure_cookies must be True or False")
        if pages is not None and not isinstance(pages, Pages):
            raise ConfigurationError("pages must be an agegate.Pages")
        self.app = app
        self.gate = gate
        self.prefix = prefix
        self.pages = pages or Pages()
        self._paths = PathRules(prefix=prefix, protect=protect, exempt=exempt, signup_paths=signup_paths)
        self._subject = subject
        self._allowed = Decision.of("allowed", gate.policy.name)
        self._cookie = GateCookie(gate, secure=secure_cookies, name=cookie_name)
        self.cookie_name = self._cookie.name
        #: The cross-site rule, for everywhere the gate writes its cookie.
        self.origins = OriginRule(origins, trust_forwarded_host=trust_forwarded_host)
        self._headers = Headers(self.pages)
        self._screen = Screen(
            gate,
            prefix=prefix,
            pages=self.pages,
            cookie=self._cookie,
            headers=self._headers,
            origins=self.origins,
        )
        # Prebuilt early answers: the blocked path only sends bytes.
        self._restricted_json = json_body({"error": "age_restricted"})
        self._restricted_html = self.pages.under_age().encode()
        self._required_json = json_body({"error": "age_screen_required", "screen": prefix})
        self._unavailable_json = json_body({"error": "store_unavailable"})
        self._unavailable_html = self.pages.store_unavailable().encode()

    # -- the request path --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The common cases first, in a small frame: a request that cannot be for the screen.
        if scope["type"] == "http" and self.prefix not in scope["path"]:
            if scope["method"] in SAFE_METHODS:
                await self.app(scope, receive, send)
            elif self._paths.gates_all:
                # Every reading of the path contains the one the router sees, so none is the
                # screen or under its prefix: with no path patterns, the request is gated.
                await self._gated(scope, receive, send)
            else:
                await self._dispatch(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            paths = readings(scope)
            # OPTIONS: CORS preflights go to the app.
            if scope["method"] != "OPTIONS" and self._paths.is_screen(paths):
                await self._screen(scope, receive, send)
                return
            if scope["method"] in SAFE_METHODS:
                await self.app(scope, receive, send)
                return
        elif kind == "websocket":
            paths = readings(scope)
        else:
            await self.app(scope, receive, send)
            return

        rule = self._paths.classify(paths)
        if rule == OPEN:
            await self.app(scope, receive, send)
            return
        signup = rule == SIGNUP and kind == "http"
        if signup:
            seen = screen_headers(scope)
            if self.origins.cross_origin(scope, seen):
                # The gate writes its cookie on signup paths: another site must not be able to
                # mark a visitor as under age there, any more than on the screen.
                html = b"text/html" in seen.get(b"accept", b"")
                root = scope.get("root_path") or ""
                await self._screen.error(send, html, 403, "cross_site_request", root=root)
                return

        await self._gated(scope, receive, send, signup=signup)

    async def _gated(self, scope: Scope, receive: Receive, send: Send, *, signup: bool = False) -> None:
        """A request that needs a screen result: the cookie, then the logged-in account."""
        cookie, accept = _cookie_and_accept(scope)
        found = self._cookie.result(cookie)
        if found is UNDER_AGE:
            await self._block(scope, receive, send, accept)
            return
        decision = found
        if self._subject is not None:
            account: Any = self._subject(scope)
            if account is not None and type(account) is not str:
                account = await _resolve(account)
            if account:
                try:
                    status = self.gate.peek_status(account) or await self.gate.cached_status(account)
                except StoreUnavailable as exc:
                    # Whether the account was purged as a child's cannot be known: refuse, for
                    # now, within the gate's store_timeout; the app is not called.
                    await self._unavailable(scope, receive, send, accept, exc.retry_after)
                    return
                except (StoreError, KeyringError) as exc:
                    # The store cannot be used at all (a keyring that does not fit it, a damaged
                    # file): refused the same way, and said loudly for the operator. The
                    # message names no person (key ids and store errors only).
                    _log.error("the age gate cannot read its store: %s", exc)
                    await self._unavailable(scope, receive, send, accept, _BROKEN_RETRY_AFTER)
                    return
                if status == "under_age":
                    await self._block(scope, receive, send, accept)
                    return
                if status == "allowed":
                    decision = self._allowed

        if signup:
            await self._signup_path(scope, receive, send, decision)
            return
        if decision is None:
            await self._require_screen(scope, receive, send, route_path(scope) or "/", accept)
            return
        scope[SCOPE_KEY] = decision
        await self.app(scope, receive, send)

    async def _block(self, scope: Scope, receive: Receive, send: Send, accept: bytes) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "age_restricted")
        elif b"text/html" not in accept:
            await respond(send, 403, self._headers.json, self._restricted_json)
        elif root := scope.get("root_path"):
            await respond(send, 403, self._headers.html, self.pages.under_age(root + "/").encode())
        else:
            await respond(send, 403, self._headers.html, self._restricted_html)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, accept: bytes, retry_after: int
    ) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "store_unavailable", code=1013)  # try again later
            return
        retry = (b"retry-after", str(retry_after).encode())
        if b"text/html" in accept:
            await respond(send, 503, [*self._headers.html, retry], self._unavailable_html)
        else:
            await respond(send, 503, [*self._headers.json, retry], self._unavailable_json)

    async def _require_screen(
        self, scope: Scope, receive: Receive, send: Send, path: str, accept: bytes
    ) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "age_screen_required")
            return
        root = scope.get("root_path") or ""
        if b"text/html" in accept:
            # Come back to the address as sent (still encoded): the decoded path can differ.
            raw = scope.get("raw_path")
            target = raw.decode("latin-1") if raw else root + path
            url = screen_url(root + self.prefix, safe_next(target, root + "/"))
            await respond(send, 428, self._headers.html, self.pages.screen_required(url).encode())
        elif root:
            body = json_body({"error": "age_screen_required", "screen": root + self.prefix})
            await respond(send, 428, self._headers.json, body)
        else:
            await respond(send, 428, self._headers.json, self._required_json)

    async def _signup_path(
        self, scope: Scope, receive: Receive, send: Send, decision: Decision | None
    ) -> None:
        """Pass a signup request on; write the cookie for any decision the app records."""
        notes: list[Decision] = []
        scope[NOTES_KEY] = notes
        if decision is not None:
            scope[SCOPE_KEY] = decision

        async def send_with_cookie(message: Message) -> None:
            if notes and message["type"] == "http.response.start":
                under = any(note.outcome == "under_age" for note in notes)
                # A response that sets the gate's cookie must not be cached for anyone else.
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"cache-control"]
                headers += self._headers.private
                headers.append(self._cookie.set_cookie("under_age" if under else "allowed"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie_and_accept(scope: Scope) -> tuple[str | None, bytes]:
    cookie: str | None = None
    accept = b""
    for name, value in scope["headers"]:
        if name == b"cookie":
            text = value.decode("latin-1")
            cookie = text if cookie is None else f"{cookie}; {text}"
        elif name == b"accept":
            accept = value
    return cookie, accept


async def _resolve(account: Any) -> str | None:
    if inspect.isawaitable(account):
        account = await account
    if account is not None and not isinstance(account, str):
        raise ConfigurationError("subject must return an account id (a string) or None")
    return account
