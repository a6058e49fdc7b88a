"""The screen under the gate's prefix: ``GET`` shows the neutral form (or, to a visitor whose
cookie says under age, the refusal), ``POST`` reads a birth date and sets the sealed cookie.

A browser's form post is answered with a redirect to a ``GET`` (post/redirect/get), so Back and
Reload never resend it: to ``next`` when allowed, to the screen itself when refused (the cookie,
not the address, says so) or when the date could not be used (the address names the message,
never what was typed)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import Receive, Scope, Send

from ..birthdate import MESSAGES
from ..decisions import Decision
from ..errors import InvalidBirthDate
from ..gate import AgeGate
from ..i18n import ENGLISH, Language
from ..policy import AgePolicy
from ..regions import REGION_KEY
from ..tokens import Outcome
from .answers import Header, Headers, respond
from .cookie import UNDER_AGE, GateCookie
from .forms import FormRefused, is_json, media_type, read_screen_body
from .language import LanguageChooser
from .origin import OriginRule
from .pages import DATE_FIELDS, Pages, ScreenForm, error_message, invalid_fields, json_body
from .paths import PATH_SAFE, safe_next

__all__ = ["Screen"]

_SCREEN_HEADERS = frozenset(
    {b"accept", b"content-type", b"content-length", b"sec-fetch-site", b"origin", b"host"}
)


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
        language: LanguageChooser | None = None,
        whole_service: bool = False,
        digital_id: bool = False,
    ):
        self.gate = gate
        #: Whether the form offers a digital ID (from the gate's prefix).
        self.digital_id = digital_id
        self._page_headers = headers.html_scripts if digital_id else headers.html
        self.prefix = prefix
        self.pages = pages
        self.cookie = cookie
        self.headers = headers
        self.origins = origins or OriginRule()
        self.language = language or LanguageChooser()
        # Mode "all": the refusal offers nothing of the service, not even its home page.
        self._whole_service = whole_service
        #: The refusal page at the app's root, by language (a handful of entries at most).
        self._under_age_html: dict[tuple[str, str | None], bytes] = {}

    def under_age_page(self, home: str, language: Language) -> bytes:
        """The refusal page in ``language``, linking to ``home``."""
        if self._whole_service:
            home = "/"  # the same page wherever the app is mounted
        elif home != "/":
            return self.pages.under_age(home, language).encode()
        page = self._under_age_html.get(language.key)
        if page is None:
            render = (
                self.pages.under_age_all(language)
                if self._whole_service
                else self.pages.under_age(home, language)
            )
            page = self._under_age_html[language.key] = render.encode()
        return page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        seen = screen_headers(scope)
        cookie = seen.get(b"cookie")
        html = b"text/html" in seen.get(b"accept", b"")
        root = scope.get("root_path") or ""
        home = quote(root, safe=PATH_SAFE) + "/"  # also a Location value: ASCII only
        action = root + self.prefix
        if method in ("GET", "HEAD"):
            # The form is the same for everyone (the contract's first row), except that a
            # visitor the screen refused sees the refusal again (where the form post leads).
            policy = self.gate.policy_for(scope.get(REGION_KEY))
            found = self.cookie.result(cookie.decode("latin-1") if cookie else None, policy)
            if html and found is UNDER_AGE:
                body = self.under_age_page(home, await self.language(scope))
            elif html:
                body = self.pages.screen(await self._form(scope, action, home)).encode()
            else:
                outcome = "under_age" if found is UNDER_AGE else ("allowed" if found else None)
                body = json_body({"screen": action, "fields": list(DATE_FIELDS), "outcome": outcome})
            page_headers = self.headers.html if found is UNDER_AGE else self._page_headers
            headers = page_headers if html else self.headers.json
            await respond(send, 200, headers, b"" if method == "HEAD" else body, len(body))
            return
        if method != "POST":
            allow = [(b"allow", b"GET, HEAD, POST")]
            await self.error(send, html, 405, "method_not_allowed", allow, root=root, scope=scope)
            return
        if self.origins.cross_origin(scope, seen):
            # Another site (a sibling subdomain included) must not be able to mark a visitor as
            # under age. A visitor of this site whose browser or proxy made it look foreign is
            # led back to the screen, where the form posts again from this page.
            await self.error(send, html, 403, "cross_site_request", root=root, scope=scope)
            return
        media = media_type(seen.get(b"content-type"))
        location = quote(root, safe=PATH_SAFE) + self.prefix  # the screen, as a Location value
        policy = self.gate.policy_for(scope.get(REGION_KEY))
        current = self.cookie.result(cookie.decode("latin-1") if cookie else None, policy)
        if current is UNDER_AGE:
            # Sticky: a new birth date changes nothing until the under-age cookie expires.
            html = html and not is_json(media)
            await self._answer(send, html, "under_age", location, set_cookie=False)
            return
        try:
            fields, next_path, json_sent = await read_screen_body(
                media, seen.get(b"content-length"), receive, home
            )
        except FormRefused as refused:
            await self.error(send, html, refused.status, refused.error, root=root, scope=scope)
            return
        if fields is None:
            return  # the client went away
        html = html and not json_sent
        try:
            decision = self.gate.screen(fields, region=scope.get(REGION_KEY))
        except InvalidBirthDate as exc:
            await self._invalid(scope, send, html, exc, fields, next_path, home, location)
            return
        where = next_path if decision.outcome == "allowed" else location
        # A verified answer (a digital ID) that counts here outranks a typed date that agrees
        # with it: keep it.
        keep = decision.allowed and isinstance(current, Decision) and current.verified
        reached = decision.age_policy
        await self._answer(send, html, decision.outcome, where, set_cookie=not keep, policy=reached)

    async def _form(self, scope: Scope, action: str, home: str) -> ScreenForm:
        """The form of a ``GET``: ``next``, and the message of a date that could not be used
        (``error`` names it, ``fields`` the fields it is about) from the query."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        language = await self.language(scope)
        reason = query.get("error", "")
        error = error_message(reason, "", self.gate.date_order, language) if reason in MESSAGES else None
        invalid = tuple(f for f in query.get("fields", "").split(",") if f in DATE_FIELDS) if error else ()
        return ScreenForm(
            action,
            safe_next(query.get("next"), home),
            error=error,
            order=language.order or self.gate.date_order,
            invalid=invalid,
            language=language,
            digital_id=action if self.digital_id else None,
        )

    async def _invalid(
        self,
        scope: Scope,
        send: Send,
        html: bool,
        exc: InvalidBirthDate,
        fields: dict[str, str],
        next_path: str,
        home: str,
        location: str,
    ) -> None:
        """Answer a birth date that cannot be used: JSON says why (in the visitor's language);
        a browser is sent back to the form, which names the message but not what was typed."""
        values = {k: v for k, v in fields.items() if k in DATE_FIELDS}
        if html and exc.reason in MESSAGES:
            query = {"next": next_path} if next_path != home else {}
            query["error"] = exc.reason
            if wrong := invalid_fields(values):
                query["fields"] = ",".join(wrong)
            target = f"{location}?{urlencode(query, safe='/')}".encode("ascii")
            await respond(send, 303, [*self.headers.private, (b"location", target)], b"")
            return
        language = await self.language(scope)
        message = error_message(exc.reason, exc.message, self.gate.date_order, language)
        if html:  # a message without a name: shown at once, with what was typed
            form_action = scope.get("root_path", "") + self.prefix
            form = ScreenForm(
                form_action,
                next_path,
                values=values,
                error=message,
                order=language.order or self.gate.date_order,
                invalid=invalid_fields(values),
                language=language,
                digital_id=form_action if self.digital_id else None,
            )
            await respond(send, 400, self._page_headers, self.pages.screen(form).encode())
        else:
            body = json_body({"error": "invalid_birth_date", "code": exc.code, "message": message})
            await respond(send, 400, self.headers.json_language, body)

    async def _answer(
        self,
        send: Send,
        html: bool,
        outcome: Outcome,
        where: str,
        *,
        set_cookie: bool,
        policy: AgePolicy | None = None,
    ) -> None:
        extra = [self.cookie.set_cookie(outcome, policy)] if set_cookie else []
        if not html:
            await respond(send, 200, [*self.headers.json, *extra], json_body({"outcome": outcome}))
        else:
            # Post/redirect/get, whatever the outcome; a refusal leads to the screen's address,
            # where the cookie (not anything in the address) shows the refusal again.
            headers = [*self.headers.private, *extra, (b"location", where.encode("ascii"))]
            await respond(send, 303, headers, b"")

    async def error(
        self,
        send: Send,
        html: bool,
        status: int,
        error: str,
        extra: Sequence[Header] = (),
        *,
        root: str = "",
        scope: Scope | None = None,
    ) -> None:
        """Answer a request the screen cannot use (``error`` is the JSON error code); the HTML
        page, in the language of ``scope``'s request, links back to the screen (under ``root``,
        the app's root path)."""
        if html:
            language = await self.language(scope) if scope is not None else ENGLISH
            body = self.pages.refused(error, root + self.prefix, language).encode()
            await respond(send, status, [*self.headers.html, *extra], body)
        else:
            await respond(send, status, [*self.headers.json, *extra], json_body({"error": error}))
