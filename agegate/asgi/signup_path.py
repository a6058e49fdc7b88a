"""Signup paths: the request goes on to the app, whose signup hook screens inline; the gate's
cookie is written on the response for every decision the app records there (so a request from
another site is refused first)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..decisions import NOTES_KEY, SCOPE_KEY, Decision
from ..gate import AgeGate
from ..hook import mark, unmark
from .answers import Header
from .cookie import GateCookie
from .endpoints import Screen, screen_headers
from .origin import OriginRule

__all__ = ["SignupCookie"]


class SignupCookie:
    """Passes signup requests on and writes one gate's cookie for what the app decided."""

    def __init__(
        self, gate: AgeGate, cookie: GateCookie, private: list[Header], origins: OriginRule, screen: Screen
    ) -> None:
        self._gate = gate
        self._cookie = cookie
        self._private = private
        self._origins = origins
        self._screen = screen

    async def refused_cross_site(self, scope: Scope, send: Send) -> bool:
        """Refuse (``403 cross_site_request``) a signup request another site made; whether
        it was refused. The gate writes its cookie on signup paths: another site must not be
        able to mark a visitor as under age there, any more than on the screen."""
        seen = screen_headers(scope)
        if not self._origins.cross_origin(scope, seen):
            return False
        html = b"text/html" in seen.get(b"accept", b"")
        root = scope.get("root_path") or ""
        await self._screen.error(send, html, 403, "cross_site_request", root=root, scope=scope)
        return True

    async def __call__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, decision: Decision | None
    ) -> None:
        """Pass a signup request on to ``app``; write the cookie for any decision it records."""
        notes: list[Decision] = []
        scope[NOTES_KEY] = notes
        if decision is not None:
            scope[SCOPE_KEY] = decision

        async def send_with_cookie(message: Message) -> None:
            if notes and message["type"] == "http.response.start":
                message = {**message, "headers": self.headers(notes, message.get("headers", ()))}
            await send(message)

        token = mark(self._gate, notes)
        try:
            await app(scope, receive, send_with_cookie)
        finally:
            unmark(token)

    def headers(self, notes: Sequence[Decision], headers: Iterable[Header]) -> list[Header]:
        """A signup response's ``headers`` with the gate's cookie for the decisions in ``notes``
        (a sticky under-age one if any is under age) and without caching."""
        under = any(note.outcome == "under_age" for note in notes)
        # A response that sets the gate's cookie must not be cached for anyone else.
        out = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
        out += self._private
        # Sealed under the weakest policy the app's decisions were reached under.
        reached = min((note.age_policy or self._gate.policy for note in notes), key=lambda p: p.min_age)
        out.append(self._cookie.set_cookie("under_age" if under else "allowed", reached))
        return out
