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
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import cookies as http_cookies
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .birthdate import BIRTH_FIELDS
from .errors import ConfigurationError, InvalidBirthDate, InvalidToken
from .gate import NOTES_KEY, SCOPE_KEY, AgeGate, Decision
from .pages import DATE_FIELDS, Pages, ScreenForm, invalid_fields, json_body, screen_url
from .tokens import Outcome

SubjectFunc = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]

#: Methods that only read; they always pass.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Largest request body the screen accepts, in bytes (a birth date needs a few dozen).
MAX_SCREEN_BODY = 8 * 1024
COOKIE_NAME = "agegate"
_UNDER_AGE = object()  # the cookie says under age (under any policy)
#: How many opened cookie tokens the middleware remembers (they are a few hundred bytes each).
_OPENED_TOKENS = 4096
_PATTERN = re.compile(r"/[^\s\x00-\x1f\x7f]{0,1023}")
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
_NEXT = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%#]{0,2047}", re.ASCII)


def _compile(name: str, patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of path patterns: ``*`` matches anything; a trailing ``/*`` also
    matches the bare path (``/checkout/*`` covers ``/checkout``)."""
    if isinstance(patterns, str | bytes):
        raise ConfigurationError(f"{name} takes a list of path patterns, for example ['/checkout/*']")
    try:
        items = list(patterns)
    except TypeError:
        raise ConfigurationError(f"{name} takes a list of path patterns") from None
    parts = []
    for pattern in items:
        if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
            raise ConfigurationError(
                f"{name}: a path pattern starts with '/' and has no spaces, for example '/checkout/*'"
            )
        tail = ""
        if pattern.endswith("/*") and len(pattern) > 2:
            pattern, tail = pattern[:-2], "(?:/.*)?"
        parts.append(".*".join(re.escape(piece) for piece in pattern.split("*")) + tail)
    if not parts:
        return None
    return re.compile("|".join(parts), re.DOTALL)


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` when it is a same-site relative path, else ``default``.

    Refused: anything not starting with one ``/`` (schemes, ``//host``, ``/\\host``), control
    characters and spaces, non-ASCII, invalid UTF-8 escapes, and any of these hidden behind
    percent-encoding.
    """
    if not value or not _NEXT.fullmatch(value):
        return default
    decoded = value
    for _ in range(3):  # double- and triple-encoded variants too
        if "%" in decoded:
            try:
                decoded = unquote(decoded, errors="strict")
            except UnicodeDecodeError:
                return default
        # Every form here starts with "/" (the pattern above, and "/" is never unquoted away).
        if decoded.startswith("//") or "\\" in decoded or not decoded.isprintable():
            return default
    return value


def _normalise(path: str) -> str:
    """``path`` with repeated slashes collapsed, ``.``/``..`` segments resolved and no trailing
    slash, as a client, a proxy or the app's router may read it; never climbs above ``/``."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def read_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, exactly as Starlette's
    ``cookie_parser`` reads it (the last of several wins), without parsing the other cookies."""
    if name not in header:
        return None
    found: str | None = None
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        if sep and key.strip() == name:
            found = value
    if found is None:
        return None
    return http_cookies._unquote(found.strip())


class _Refused(Exception):
    """The screen cannot use this request body; carries the status and JSON error code."""

    def __init__(self, status: int, error: str) -> None:
        self.status = status
        self.error = error


class AgeGateMiddleware:
    """Blocks unsafe requests from visitors under the gate's minimum age, and serves the screen.

    ``protect``, ``exempt`` and ``signup_paths`` are path patterns (``"/checkout/*"``);
    ``protect=None`` protects every path; the screen's ``prefix`` is always exempt. ``subject``
    maps the ASGI scope to the logged-in account id (or ``None``), plain or async; an account's
    stored attestation then counts as well as the browser's cookie. ``secure_cookies=False`` drops
    ``Secure`` and the ``__Host-`` prefix, for plain-http development only. ``pages`` renders the
    HTML (see :class:`~agegate.pages.Pages`).
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
            raise ConfigurationError("pages must be an agegate.pages.Pages")
        self.app = app
        self.gate = gate
        self.prefix = prefix
        self.pages = pages or Pages()
        self._protect = None if protect is None else _compile("protect", protect)
        self._protect_all = protect is None
        self._exempt = _compile("exempt", exempt)
        self._prefix_slash = prefix + "/"  # everything under the screen's prefix is exempt
        self._signup = _compile("signup_paths", signup_paths)
        self._subject = subject
        self._sealer = gate.sealer
        self._opened: dict[str, tuple[int, Any]] = {}
        self._policy = gate.policy.name
        self._allowed = Decision.of("allowed", self._policy)

        self.cookie_name = ("__Host-" if secure_cookies else "") + COOKIE_NAME
        attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure_cookies else "")
        self._ttl: dict[Outcome, int] = {
            "allowed": int(gate.allowed_ttl.total_seconds()),
            "under_age": int(gate.under_age_ttl.total_seconds()),
        }
        self._cookie_attrs = {outcome: f"; Max-Age={ttl}{attrs}" for outcome, ttl in self._ttl.items()}

        private = [(b"cache-control", b"no-store"), (b"vary", b"Cookie, Accept")]
        self._json_headers = [(b"content-type", b"application/json"), *private]
        self._html_headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            *private,
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", self.pages.csp.encode("latin-1")),
        ]
        self._private = private
        # Prebuilt early answers: the blocked path only sends bytes.
        self._restricted_json = json_body({"error": "age_restricted"})
        self._restricted_html = self.pages.under_age().encode()
        self._required_json = json_body({"error": "age_screen_required", "screen": prefix})

    # -- the request path --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The common case first, in a small frame: a read that cannot be for the screen.
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS and self.prefix not in scope["path"]:
            await self.app(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = _route_path(scope)
            if path == self.prefix and scope["method"] != "OPTIONS":  # OPTIONS: CORS preflights
                await self._screen(scope, receive, send)
                return
            if scope["method"] in SAFE_METHODS:
                await self.app(scope, receive, send)
                return
        elif kind == "websocket":
            path = _route_path(scope)
        else:
            await self.app(scope, receive, send)
            return

        if "//" in path or "/." in path or path[-1:] == "/":
            # Match what the app may route "//checkout", "/checkout/" or "/agegate/../checkout" as.
            path = _normalise(path)
        if (
            (not self._protect_all and not (self._protect and self._protect.fullmatch(path)))
            or path.startswith(self._prefix_slash)
            or path == self.prefix  # "/agegate/" normalised
            or (self._exempt is not None and self._exempt.fullmatch(path))
        ):
            await self.app(scope, receive, send)
            return

        cookie, accept = _cookie_and_accept(scope)
        found = self._read_result(cookie)
        if found is _UNDER_AGE:
            await self._block(scope, receive, send, accept)
            return
        decision = found
        if self._subject is not None:
            account: Any = self._subject(scope)
            if account is not None and type(account) is not str:
                account = await _resolve(account)
            if account:
                status = self.gate.peek_status(account) or await self.gate.cached_status(account)
                if status == "under_age":
                    await self._block(scope, receive, send, accept)
                    return
                if status == "allowed":
                    decision = self._allowed

        if self._signup is not None and kind == "http" and self._signup.fullmatch(path):
            await self._signup_path(scope, receive, send, decision)
            return
        if decision is None:
            await self._require_screen(scope, receive, send, path, accept)
            return
        scope[SCOPE_KEY] = decision
        await self.app(scope, receive, send)

    def _read_result(self, cookie: str | None) -> Any:
        """The allowed Decision, :data:`_UNDER_AGE`, or ``None`` for no usable cookie."""
        if not cookie:
            return None
        token = read_cookie(cookie, self.cookie_name)
        if token is None:
            return None
        now = int(time.time())
        # A browser sends the same token for months: remember what a token that opened says,
        # until it expires, instead of decrypting it on every request. Only tokens that opened
        # get here, so a forged one can never be served from memory.
        known = self._opened.get(token)
        if known is not None and now < known[0]:
            return known[1]
        try:
            claims = self._sealer.open(token, now=now)
        except InvalidToken:
            return None
        if claims.outcome == "under_age":
            found: Any = _UNDER_AGE  # a child's answer counts under any policy
        else:
            # An allowed answer counts only under the policy it was given for.
            found = self._allowed if claims.policy == self._policy else None
        if len(self._opened) >= _OPENED_TOKENS:
            self._opened.clear()
        self._opened[token] = (claims.expires_at, found)
        return found

    async def _block(self, scope: Scope, receive: Receive, send: Send, accept: bytes) -> None:
        if scope["type"] == "websocket":
            await _close_websocket(receive, send, "age_restricted")
        elif b"text/html" not in accept:
            await _respond(send, 403, self._json_headers, self._restricted_json)
        elif root := scope.get("root_path"):
            await _respond(send, 403, self._html_headers, self.pages.under_age(root + "/").encode())
        else:
            await _respond(send, 403, self._html_headers, self._restricted_html)

    async def _require_screen(
        self, scope: Scope, receive: Receive, send: Send, path: str, accept: bytes
    ) -> None:
        if scope["type"] == "websocket":
            await _close_websocket(receive, send, "age_screen_required")
            return
        root = scope.get("root_path") or ""
        if b"text/html" in accept:
            # Come back to the address as sent (still encoded): the decoded path can differ.
            raw = scope.get("raw_path")
            target = raw.decode("latin-1") if raw else root + path
            url = screen_url(root + self.prefix, safe_next(target, root + "/"))
            await _respond(send, 428, self._html_headers, self.pages.screen_required(url).encode())
        elif root:
            body = json_body({"error": "age_screen_required", "screen": root + self.prefix})
            await _respond(send, 428, self._json_headers, body)
        else:
            await _respond(send, 428, self._json_headers, self._required_json)

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
                headers += self._private
                headers.append(self._set_cookie("under_age" if under else "allowed"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _set_cookie(self, outcome: Outcome) -> tuple[bytes, bytes]:
        now = int(time.time())
        token = self._sealer.seal(outcome, self._policy, issued_at=now, expires_at=now + self._ttl[outcome])
        return (b"set-cookie", f"{self.cookie_name}={token}{self._cookie_attrs[outcome]}".encode("latin-1"))

    # -- the screen ----------------------------------------------------------------------------

    async def _screen(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        seen = _screen_headers(scope)
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
                found = self._read_result(cookie.decode("latin-1") if cookie else None)
                outcome = "under_age" if found is _UNDER_AGE else ("allowed" if found else None)
                body = json_body({"screen": action, "fields": list(DATE_FIELDS), "outcome": outcome})
            headers = self._html_headers if html else self._json_headers
            await _respond(send, 200, headers, b"" if method == "HEAD" else body, len(body))
            return
        if method != "POST":
            await self._answer_error(send, html, 405, "method_not_allowed", [(b"allow", b"GET, HEAD, POST")])
            return
        if _cross_origin(scope, seen):
            # Another site (a sibling subdomain included) must not be able to mark a visitor as
            # under age.
            await self._answer_error(send, html, 403, "cross_site_request")
            return
        media = _media_type(seen.get(b"content-type"))
        if self._read_result(cookie.decode("latin-1") if cookie else None) is _UNDER_AGE:
            # Sticky: a new birth date changes nothing until the under-age cookie expires.
            await self._answer(send, html and not _is_json(media), "under_age", home, home, set_cookie=False)
            return
        try:
            fields, next_path, is_json = await _read_screen_body(
                media, seen.get(b"content-length"), receive, home
            )
        except _Refused as refused:
            await self._answer_error(send, html, refused.status, refused.error)
            return
        if fields is None:
            return  # the client went away
        html = html and not is_json
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
                await _respond(send, 400, self._html_headers, self.pages.screen(form).encode())
            else:
                body = json_body({"error": "invalid_birth_date", "code": exc.code, "message": exc.message})
                await _respond(send, 400, self._json_headers, body)
            return
        await self._answer(send, html, decision.outcome, next_path, home, set_cookie=True)

    async def _answer(
        self, send: Send, html: bool, outcome: Outcome, next_path: str, home: str, *, set_cookie: bool
    ) -> None:
        extra = [self._set_cookie(outcome)] if set_cookie else []
        if not html:
            await _respond(send, 200, [*self._json_headers, *extra], json_body({"outcome": outcome}))
        elif outcome == "allowed":
            headers = [*self._private, *extra, (b"location", next_path.encode("ascii"))]
            await _respond(send, 303, headers, b"")
        else:
            page = self._restricted_html if home == "/" else self.pages.under_age(home).encode()
            await _respond(send, 200, [*self._html_headers, *extra], page)

    async def _answer_error(
        self, send: Send, html: bool, status: int, error: str, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        if html:
            body = self.pages.page("Something went wrong", _ERROR_HTML[error]).encode()
            await _respond(send, status, [*self._html_headers, *extra], body)
        else:
            await _respond(send, status, [*self._json_headers, *extra], json_body({"error": error}))


_ERROR_HTML = {
    "cross_site_request": "<h1>Please start again</h1><p>This form was sent from another site.</p>",
    "request_too_large": "<h1>Please start again</h1><p>That was more than this form takes.</p>",
    "unsupported_media_type": "<h1>Please start again</h1><p>This form could not be read.</p>",
    "invalid_request": "<h1>Please start again</h1><p>This form could not be read.</p>",
    "method_not_allowed": "<h1>Please start again</h1><p>This form could not be read.</p>",
}


def _route_path(scope: Scope) -> str:
    """The path the app routes on: without the root path the app is mounted under."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


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


_SCREEN_HEADERS = frozenset(
    {b"accept", b"content-type", b"content-length", b"sec-fetch-site", b"origin", b"host"}
)


def _screen_headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers the screen reads, in one pass (cookies joined as one header)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            found[name] = found[name] + b"; " + value if name in found else bytes(value)
        elif name in _SCREEN_HEADERS:
            found[name] = bytes(value)
    return found


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _cross_origin(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """True when a browser says the request comes from another origin.

    ``Sec-Fetch-Site`` is set by the browser and cannot be forged by a page, so it decides when
    present (only ``same-origin`` and ``none``, a typed address, pass); otherwise an ``Origin``
    must be this request's own ``scheme://host[:port]``. Neither header: not a browser that
    could be tricked, so it passes.
    """
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site not in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None:
        return False
    scheme = str(scope.get("scheme") or "http")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"]).lower()  # no Host header (HTTP/2 :authority)
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return not host or origin.decode("latin-1").lower() != f"{scheme}://{host}"


def _media_type(raw: bytes | None) -> str:
    """The media type of a ``Content-Type`` value, lower case, without parameters (``""`` when
    not given)."""
    return (raw or b"").split(b";", 1)[0].strip().lower().decode("latin-1")


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


async def _resolve(account: Any) -> str | None:
    if inspect.isawaitable(account):
        account = await account
    if account is not None and not isinstance(account, str):
        raise ConfigurationError("subject must return an account id (a string) or None")
    return account


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, length: int | None = None
) -> None:
    size = str(len(body) if length is None else length).encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", size)]}
    )
    await send({"type": "http.response.body", "body": body})


async def _close_websocket(receive: Receive, send: Send, reason: str) -> None:
    """Refuse a websocket with close code 1008, without calling the app.

    A close sent before the handshake is accepted reaches the client as an HTTP 403 (the ASGI
    spec), never as a close code; so accept first, then close at once."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1008, "reason": reason})


async def _read_screen_body(
    media: str, declared: bytes | None, receive: Receive, home: str
) -> tuple[dict[str, str] | None, str, bool]:
    """The birth-date fields, the safe ``next`` path (``home`` by default) and whether the body
    was JSON, from a body of media type ``media`` and declared length ``declared``.

    Reads at most :data:`MAX_SCREEN_BODY` bytes; ``(None, …)`` when the client disconnected.
    """
    is_json = _is_json(media)
    if not is_json and media not in ("", "application/x-www-form-urlencoded"):
        raise _Refused(415, "unsupported_media_type")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, "invalid_request")
        if int(declared) > MAX_SCREEN_BODY:
            raise _Refused(413, "request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, home, is_json
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_SCREEN_BODY:
            raise _Refused(413, "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
        if is_json:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("not an object")
            items = list(data.items())
        else:
            items = parse_qsl(text, keep_blank_values=True, max_num_fields=32)
    except (ValueError, RecursionError):
        raise _Refused(400, "invalid_request") from None
    fields: dict[str, str] = {}
    next_path = home
    for key, value in items:
        if isinstance(value, bool) or not isinstance(value, str | int):
            if key in BIRTH_FIELDS or key == "next":
                raise _Refused(400, "invalid_request")
            continue
        if key in BIRTH_FIELDS:
            fields[key] = str(value)
        elif key == "next":
            next_path = safe_next(str(value), home)
    # Empty form fields mean "not given", so that a year alone still reads as a partial date.
    return {k: v for k, v in fields.items() if v.strip()}, next_path, is_json
