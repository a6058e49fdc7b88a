"""The screen under the gate's prefix: ``GET`` shows the neutral form, ``POST`` reads a birth
date and sets the sealed cookie."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import parse_qsl, quote

from starlette.types import Receive, Scope, Send

from ..errors import InvalidBirthDate
from ..gate import AgeGate
from ..tokens import Outcome
from .answers import Header, Headers, respond
from .cookie import UNDER_AGE, GateCookie
from .forms import FormRefused, is_json, media_type, read_screen_body
from .origin import OriginRule
from .pages import DATE_FIELDS, Pages, ScreenForm, invalid_fields, json_body
from .paths import safe_next

__all__ = ["Screen"]

_PATH_SAFE = "/-._~!$&'()*+,;=:@"
_SCREEN_HEADERS = frozenset(
    {b"accept", b"content-type", b"content-length", b"sec-fetch-site", b"origin", b"host"}
)
#: What each refusal page says; every one ends with a link back to the screen.
_ERROR_HTML = {
    "cross_site_request": "<h1>Please start again</h1><p>This form was sent from another site.</p>",
    "request_too_large": "<h1>Please start again</h1><p>That was more than this form takes.</p>",
    "unsupported_media_type": "<h1>Please start again</h1><p>This form could not be read.</p>",
    "invalid_request": "<h1>Please start again</h1><p>This form could not be read.</p>",
    "method_not_allowed": "<h1>Please start again</h1><p>This form could not be read.</p>",
}


def screen_headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers the screen reads, in one pass (cookies joined as one header)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            found[name] = found[name] + b"; " + value if name in found else bytes(value)
        elif name in _SCREEN_HEADERS:
            found[name] = bytes(value)
    return found


class Screen:
    """The ASGI endpoint at the gate's prefix (``scope["path"]`` is not looked at)."""

    def __init__(
        self,
        gate: AgeGate,
        *,
        prefix: str,
        pages: Pages,
        cookie: GateCookie,
        headers: Headers,
        origins: OriginRule | None = None,
        whole_service: bool = False,
    ):
        self.gate = gate
        self.prefix = prefix
        self.pages = pages
        self.cookie = cookie
        self.headers = headers
        self.origins = origins or OriginRule()
        # Mode "all": the refusal offers nothing of the service, not even its home page.
        self._whole_service = whole_service
        self._under_age_html = (pages.under_age_all() if whole_service else pages.under_age()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        seen = screen_headers(scope)
        cookie = seen.get(b"cookie")
        html = b"text/html" in seen.get(b"accept", b"")
        root = scope.get("root_path") or ""
        home = quote(root, safe=_PATH_SAFE) + "/"  # also a Location value: ASCII only
        action = root + self.prefix
        if method in ("GET", "HEAD"):
            # The form is the same for everyone (the contract's first row); a visitor already
            # under age who answers again is still answered under age (POST is sticky).
            if html:
                query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
                body = self.pages.screen(
                    ScreenForm(action, safe_next(query.get("next"), home), order=self.gate.date_order)
                ).encode()
            else:
                found = self.cookie.result(cookie.decode("latin-1") if cookie else None)
                outcome = "under_age" if found is UNDER_AGE else ("allowed" if found else None)
                body = json_body({"screen": action, "fields": list(DATE_FIELDS), "outcome": outcome})
            headers = self.headers.html if html else self.headers.json
            await respond(send, 200, headers, b"" if method == "HEAD" else body, len(body))
            return
        if method != "POST":
            await self.error(
                send, html, 405, "method_not_allowed", [(b"allow", b"GET, HEAD, POST")], root=root
            )
            return
        if self.origins.cross_origin(scope, seen):
            # Another site (a sibling subdomain included) must not be able to mark a visitor as
            # under age. A visitor of this site whose browser or proxy made it look foreign is
            # led back to the screen, where the form posts again from this page.
            await self.error(send, html, 403, "cross_site_request", root=root)
            return
        media = media_type(seen.get(b"content-type"))
        if self.cookie.result(cookie.decode("latin-1") if cookie else None) is UNDER_AGE:
            # Sticky: a new birth date changes nothing until the under-age cookie expires.
            await self._answer(send, html and not is_json(media), "under_age", home, home, set_cookie=False)
            return
        try:
            fields, next_path, json_sent = await read_screen_body(
                media, seen.get(b"content-length"), receive, home
            )
        except FormRefused as refused:
            await self.error(send, html, refused.status, refused.error, root=root)
            return
        if fields is None:
            return  # the client went away
        html = html and not json_sent
        try:
            decision = self.gate.screen(fields)
        except InvalidBirthDate as exc:
            if html:
                values = {k: v for k, v in fields.items() if k in DATE_FIELDS}
                form = ScreenForm(
                    action,
                    next_path,
                    values=values,
                    error=exc.message,
                    order=self.gate.date_order,
                    invalid=invalid_fields(values),
                )
                await respond(send, 400, self.headers.html, self.pages.screen(form).encode())
            else:
                body = json_body({"error": "invalid_birth_date", "code": exc.code, "message": exc.message})
                await respond(send, 400, self.headers.json, body)
            return
        await self._answer(send, html, decision.outcome, next_path, home, set_cookie=True)

    async def _answer(
        self, send: Send, html: bool, outcome: Outcome, next_path: str, home: str, *, set_cookie: bool
    ) -> None:
        extra = [self.cookie.set_cookie(outcome)] if set_cookie else []
        if not html:
            await respond(send, 200, [*self.headers.json, *extra], json_body({"outcome": outcome}))
        elif outcome == "allowed":
            headers = [*self.headers.private, *extra, (b"location", next_path.encode("ascii"))]
            await respond(send, 303, headers, b"")
        else:
            plain = home == "/" or self._whole_service
            page = self._under_age_html if plain else self.pages.under_age(home).encode()
            await respond(send, 200, [*self.headers.html, *extra], page)

    async def error(
        self, send: Send, html: bool, status: int, error: str, extra: Sequence[Header] = (), *, root: str = ""
    ) -> None:
        """Answer a request the screen cannot use (``error`` is the JSON error code); the HTML
        page links back to the screen (under ``root``, the app's root path)."""
        if html:
            back = f'<p><a class="button" href="{escape(root + self.prefix)}">Start again</a></p>'
            body = self.pages.page("Something went wrong", _ERROR_HTML[error] + back).encode()
            await respond(send, status, [*self.headers.html, *extra], body)
        else:
            await respond(send, status, [*self.headers.json, *extra], json_body({"error": error}))
