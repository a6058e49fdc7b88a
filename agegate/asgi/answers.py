"""Raw ASGI answers: the headers every gate response carries, a whole response in two
messages, and a refused websocket."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from .language import LanguageChooser
from .pages import Pages, json_body

__all__ = ["Headers", "Unavailable", "accept_of", "close_websocket", "respond"]

Header = tuple[bytes, bytes]


class Headers:
    """The header lists of the gate's own responses, built once per middleware."""

    def __init__(self, pages: Pages, *, vary_language: bool = False) -> None:
        #: A response that may set the gate's cookie is nobody else's to cache.
        self.private: list[Header] = [(b"cache-control", b"no-store"), (b"vary", b"Cookie, Accept")]
        self.json: list[Header] = [(b"content-type", b"application/json"), *self.private]
        # Pages and messages follow Accept-Language when more than English can be spoken.
        languages: list[Header] = [
            (b"cache-control", b"no-store"),
            (b"vary", b"Cookie, Accept, Accept-Language" if vary_language else b"Cookie, Accept"),
        ]
        #: A JSON answer carrying a message in the visitor's language.
        self.json_language: list[Header] = [(b"content-type", b"application/json"), *languages]
        self.html: list[Header] = [
            (b"content-type", b"text/html; charset=utf-8"),
            *languages,
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", pages.csp.encode("latin-1")),
        ]
        #: The screen's headers when it offers a digital ID: its one script is the gate's own
        #: ``{prefix}/dc.js``, which fetches from the gate's own endpoints.
        scripts = f"{pages.csp}; script-src 'self'; connect-src 'self'"
        self.html_scripts: list[Header] = [
            *self.html[:-1],
            (b"content-security-policy", scripts.encode("latin-1")),
        ]


def accept_of(scope: Scope) -> bytes:
    """The request's ``Accept`` header (the last one), or ``b""``: read only when answering."""
    accept = b""
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value
    return bytes(accept)


async def respond(
    send: Send, status: int, headers: list[Header], body: bytes, length: int | None = None
) -> None:
    """Send a whole response; ``length`` overrides the ``Content-Length`` (for ``HEAD``)."""
    size = str(len(body) if length is None else length).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", size)]}
    )
    await send({"type": "http.response.body", "body": body})


async def close_websocket(receive: Receive, send: Send, reason: str, code: int = 1008) -> None:
    """Refuse a websocket with close code ``code`` (1008, policy violation, by default),
    without calling the app.

    A close sent before the handshake is accepted reaches the client as an HTTP 403 (the ASGI
    spec), never as a close code; so accept first, then close at once."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class Unavailable:
    """The answer to a request the gate cannot decide for now (its store is down, or the app's
    ``subject=`` or ``region=`` function answered what the gate cannot use): 503 with
    ``Retry-After``, a page or ``{"error": "store_unavailable"}``; a websocket is closed with
    1013 (try again later). The app is not called."""

    def __init__(self, pages: Pages, headers: Headers, language: LanguageChooser) -> None:
        self._pages, self._headers, self._language = pages, headers, language
        self._json = json_body({"error": "store_unavailable"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send, retry_after: int) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "store_unavailable", code=1013)
            return
        retry = (b"retry-after", str(retry_after).encode())
        if b"text/html" in accept_of(scope):
            headers = [*self._headers.html, retry]
            body = self._pages.store_unavailable(await self._language(scope)).encode()
        else:
            headers, body = [*self._headers.json, retry], self._json
        await respond(send, 503, headers, b"" if scope["method"] == "HEAD" else body, len(body))
