"""AgeGateMiddleware: a pure ASGI gate in front of any app.

Reading stays open (in ``mode="writes"``, the default; ``mode="all"`` gates reads too); providing
data or transacting (unsafe methods, websockets) on a protected path needs a screen result. The
order of :meth:`AgeGateMiddleware.__call__`, cheapest first: own the lifespan (the gate's store
opens and closes with the server), serve the screen, let safe methods through without parsing
any cookie, let unprotected paths through, and only then read the sealed cookie and the
logged-in account. A blocked request is answered before its body is read and before the app is
called; an allowed one is handed on with the original ``receive``,
so uploads stream through unbuffered.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..decisions import NOTES_KEY, SCOPE_KEY, Decision
from ..errors import (
    AgeGateError,
    ConfigurationError,
    InvalidSignal,
    KeyringError,
    StoreError,
    StoreUnavailable,
)
from ..gate import AgeGate
from ..hook import mark, unmark
from ..regions import REGION_KEY, RegionFunc
from ..signals import AgeSignal
from .answers import Header, Headers, close_websocket, respond
from .cookie import UNDER_AGE, GateCookie
from .endpoints import _PATH_SAFE, Screen, screen_headers
from .language import LanguageChooser, LocaleFunc
from .lifespan import run_lifespan
from .origin import OriginRule
from .pages import Pages, json_body, screen_url
from .paths import OPEN, SIGNUP, PathRules, Patterns, readings, safe_next
from .report import ReportEndpoint
from .signals import SignalFunc, read_signal

if TYPE_CHECKING:
    from ..credentials import CredentialVerifier
    from .credential import CredentialEndpoint

__all__ = ["MODES", "SAFE_METHODS", "AgeGateMiddleware", "Mode", "SubjectFunc"]

SubjectFunc = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]
#: What the gate guards: ``"writes"`` (unsafe methods and websockets) or ``"all"`` (reads too).
Mode = Literal["writes", "all"]
MODES: tuple[Mode, ...] = ("writes", "all")

_log = logging.getLogger("agegate.asgi")
#: Retry-After, in seconds, when the store cannot be used until someone mends it.
_BROKEN_RETRY_AFTER = 60
#: Methods that only read; they always pass in mode "writes" (only OPTIONS in mode "all").
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What a 428 for a path that needs a verified answer tells the client to do.
_HINT = "a verified digital ID is needed here: answer the screen with one"
#: What passes in mode "all" without a screen result: CORS preflights, which carry no cookie.
_PREFLIGHT = frozenset({"OPTIONS"})


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
    ``signal`` maps the ASGI scope to the :class:`~agegate.AgeSignal` a client sent with the
    request (or ``None``), plain or async (:mod:`agegate.asgi.signals`): an under-age one is
    refused like an under-age cookie (and, with ``subject``, recorded against the account:
    actual knowledge), an allowed one passes, a straddling one decides nothing; the lower age
    of the cookie, the account and the signal wins.

    ``mode="writes"`` (the default) leaves reading open. ``mode="all"`` gates the whole service:
    reads (``GET``, ``HEAD``) of protected paths need a screen result too (a browser without one
    is sent to the screen with ``303``, other clients get ``428``; a visitor the screen turned
    away gets ``403`` on every protected page); ``OPTIONS`` and exempt paths stay open, and
    signup paths can be read without a result (their form screens inline).

    ``region`` maps the ASGI scope to the visitor's region code (or ``None`` for the gate's own
    policy), plain or async, for example :func:`agegate.region_from_header`; the screen, the
    cookie, the account's attestation and signup paths then follow that region's policy
    (:meth:`AgeGate.policy_for <agegate.AgeGate.policy_for>`). The region is never stored.

    ``locale`` is the app's own language choice over the ASGI scope (a tag such as ``"de"``, or
    ``None`` to follow ``Accept-Language``), plain or async; pages speak other languages than
    English only with the extra ``agegate[i18n]``.

    ``credentials`` (an :class:`agegate.credentials.CredentialVerifier`, extra
    ``agegate[credentials]``) lets the screen offer a digital ID; ``require_verified`` names
    the path patterns where only such a verified answer will do (``428`` otherwise).
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
        mode: Mode = "writes",
        region: RegionFunc | None = None,
        locale: LocaleFunc | None = None,
        credentials: CredentialVerifier | None = None,
        require_verified: Sequence[str] = (),
        signal: SignalFunc | None = None,
    ) -> None:
        if not isinstance(gate, AgeGate):
            raise ConfigurationError("gate must be an AgeGate")
        if not isinstance(prefix, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
            raise ConfigurationError("prefix must be a path such as '/agegate' (no trailing slash)")
        if subject is not None and not callable(subject):
            raise ConfigurationError("subject must be a function of the ASGI scope, or None")
        if region is not None and not callable(region):
            raise ConfigurationError("region must be a function of the ASGI scope, or None")
        if signal is not None and not callable(signal):
            raise ConfigurationError("signal must be a function of the ASGI scope, or None")
        if not isinstance(secure_cookies, bool):
            raise ConfigurationError("secure_cookies must be True or False")
        if pages is not None and not isinstance(pages, Pages):
            raise ConfigurationError("pages must be an agegate.Pages")
        if not isinstance(mode, str) or mode not in MODES:
            raise ConfigurationError('mode must be "writes" (the default) or "all"')
        self.app = app
        self.gate = gate
        self.prefix = prefix
        self.mode = mode
        #: The methods that pass without a screen result, whatever the path (in mode "all",
        #: reads go on to be gated).
        self._passing = SAFE_METHODS if mode == "writes" else _PREFLIGHT
        self.pages = pages or Pages()
        self._paths = PathRules(prefix=prefix, protect=protect, exempt=exempt, signup_paths=signup_paths)
        self._gates_all = self._paths.gates_all
        self._subject = subject
        self._region = region
        self._signal = signal
        self._allowed = Decision.of("allowed", gate.policy.name)
        self._cookie = GateCookie(gate, secure=secure_cookies, name=cookie_name)
        self.cookie_name = self._cookie.name
        #: The cross-site rule, for everywhere the gate writes its cookie.
        self.origins = OriginRule(origins, trust_forwarded_host=trust_forwarded_host)
        self._language = LanguageChooser(locale)
        self._headers = Headers(self.pages, vary_language=self._language.varies)
        self._screen = Screen(
            gate,
            prefix=prefix,
            pages=self.pages,
            cookie=self._cookie,
            headers=self._headers,
            origins=self.origins,
            language=self._language,
            whole_service=mode == "all",
            digital_id=credentials is not None,
        )
        self._credential = self._digital_ids(credentials, secure_cookies)
        self._require_verified = Patterns("require_verified", require_verified) if require_verified else None
        if self._require_verified is not None and credentials is None:
            raise ConfigurationError(
                "require_verified needs credentials= (a CredentialVerifier): nobody could pass"
            )
        self._verify_json = json_body({"error": "age_verification_required", "screen": prefix, "hint": _HINT})
        self._report = ReportEndpoint(
            gate,
            prefix=prefix,
            pages=self.pages,
            headers=self._headers,
            origins=self.origins,
            language=self._language,
        )
        # Prebuilt early answers: the blocked path only sends bytes (pages are kept per language).
        self._restricted_json = json_body({"error": "age_restricted"})
        self._required_json = json_body({"error": "age_screen_required", "screen": prefix})
        self._unavailable_json = json_body({"error": "store_unavailable"})
        self._invalid_signal_json = json_body({"error": "invalid_age_signal"})

    # -- the request path --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The common cases first, in a small frame: a request that cannot be for the screen (or
        # the digital-ID endpoints under its prefix).
        if scope["type"] == "http" and self.prefix not in scope["path"]:
            method = scope["method"]
            if method in self._passing:
                await self.app(scope, receive, send)
            elif self._gates_all:
                # Every reading of the path contains the one the router sees, so none is the
                # screen or under its prefix: with no path patterns, the request is gated.
                await self._gated(scope, receive, send, None, signup=False, reading=method in SAFE_METHODS)
            else:
                await self._dispatch(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            paths = readings(scope)
            if self._credential is not None and (route := self._credential.route(paths)):
                if self._region is not None:
                    scope[REGION_KEY] = await _region_of(self._region, scope)  # the age asked for
                await self._credential(scope, receive, send, route)
                return
            # OPTIONS: CORS preflights go to the app.
            if scope["method"] != "OPTIONS" and self._paths.is_screen(paths):
                if self._region is not None:
                    scope[REGION_KEY] = await _region_of(self._region, scope)  # for the screen's policy
                await self._screen(scope, receive, send)
                return
            if scope["method"] != "OPTIONS" and self._paths.is_report(paths):
                await self._report(scope, receive, send)  # reports from parents: open to all
                return
            if scope["method"] in self._passing:
                await self.app(scope, receive, send)
                return
        elif kind == "websocket":
            paths = readings(scope)
        elif kind == "lifespan":
            await run_lifespan(
                self.app, scope, receive, send, opening=self.gate.store, closing=self.gate.aclose
            )
            return
        else:
            await self.app(scope, receive, send)
            return

        rule = self._paths.classify(paths)
        if rule == OPEN:
            token = mark(self.gate, None)
            try:
                await self.app(scope, receive, send)
            finally:
                unmark(token)
            return
        signup = rule == SIGNUP and kind == "http"
        # Only in mode "all": a GET or HEAD that needs a screen result.
        reading = kind == "http" and scope["method"] in SAFE_METHODS
        if signup and not reading:
            seen = screen_headers(scope)
            if self.origins.cross_origin(scope, seen):
                # The gate writes its cookie on signup paths: another site must not be able to
                # mark a visitor as under age there, any more than on the screen.
                html = b"text/html" in seen.get(b"accept", b"")
                root = scope.get("root_path") or ""
                await self._screen.error(send, html, 403, "cross_site_request", root=root, scope=scope)
                return

        await self._gated(scope, receive, send, paths, signup=signup, reading=reading)

    async def _gated(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        paths: tuple[str, ...] | None,
        *,
        signup: bool,
        reading: bool,
    ) -> None:
        """A request that needs a screen result: the cookie, then the logged-in account.
        ``paths``: the readings of the path, or ``None`` when not yet needed."""
        region = None
        if self._region is not None:
            # Also for the app's signup hook (agegate.signup_fields), in request memory only.
            region = scope[REGION_KEY] = await _region_of(self._region, scope)
        policy = self.gate.policy_for(region)
        cookie, accept = _cookie_and_accept(scope)
        found = self._cookie.result(cookie, policy)
        if self._signal is not None:
            # Read even when the cookie refuses: an under-age signal is recorded for the account.
            try:
                read = await read_signal(self._signal, scope, self.gate, region)
            except InvalidSignal:
                await self._refuse_signal(scope, receive, send)
                return
            if read is not None and read[1] is not None:
                if not read[1].allowed:
                    await self._under_age_signal(scope, receive, send, accept, read[0], region)
                    return
                found = found or read[1]
        if found is UNDER_AGE:
            await self._block(scope, receive, send, accept)
            return
        decision = found
        if self._subject is not None:
            account = await self._account(scope)
            if account:
                try:
                    status = self.gate.peek_status(account, region=region) or await self.gate.cached_status(
                        account, region=region
                    )
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
                # A verified cookie stays verified: the account's attestation does not record it.
                if status == "allowed" and (decision is None or not decision.verified):
                    decision = self._allowed if region is None else Decision.of("allowed", policy)

        if signup and not reading:
            await self._signup_path(scope, receive, send, decision)
            return
        verified = decision is not None and decision.verified
        if self._require_verified is not None and not verified and not signup:
            paths = paths or readings(scope)
            if self._needs_verified(paths):
                await self._require_screen(scope, receive, send, paths[0], accept, verified=True)
                return
        if decision is None and not signup:  # a signup form is read before its inline screen
            path = (paths or readings(scope))[0]  # the path the app routes on
            await self._require_screen(scope, receive, send, path, accept, reading)
            return
        if decision is not None:
            scope[SCOPE_KEY] = decision
        token = mark(self.gate, None)  # a signup in this request would write no cookie: refused
        try:
            await self.app(scope, receive, send)
        finally:
            unmark(token)

    async def _account(self, scope: Scope) -> str | None:
        account: Any = self._subject(scope) if self._subject is not None else None
        if account is not None and type(account) is not str:
            account = await _resolve(account)
        return account  # type: ignore[no-any-return]

    async def _under_age_signal(
        self, scope: Scope, receive: Receive, send: Send, accept: bytes, signal: AgeSignal, region: str | None
    ) -> None:
        """Refuse the request; record the logged-in account under age (actual knowledge). The
        refusal stands even when the record cannot be written now: the next request tries again."""
        account = await self._account(scope)
        if account:
            try:
                # Once recorded, the account's cached status says so: no write (and no revision
                # bump for every worker) on each request the child's device makes.
                known = self.gate.peek_status(account) or await self.gate.cached_status(account)
                if known != "under_age":
                    await self.gate.record_signal(account, signal, region=region)
            except AgeGateError as exc:
                _log.error("the age gate could not record an under-age signal: %s", type(exc).__name__)
        await self._block(scope, receive, send, accept)

    async def _refuse_signal(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "invalid_age_signal")
        else:
            await respond(send, 400, self._headers.json, self._invalid_signal_json)

    async def _block(self, scope: Scope, receive: Receive, send: Send, accept: bytes) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "age_restricted")
            return
        if b"text/html" not in accept:
            headers, body = self._headers.json, self._restricted_json
        else:
            home = (scope.get("root_path") or "") + "/"
            headers, body = self._headers.html, self._screen.under_age_page(home, await self._language(scope))
        if scope["method"] == "HEAD":
            await respond(send, 403, headers, b"", len(body))
        else:
            await respond(send, 403, headers, body)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, accept: bytes, retry_after: int
    ) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "store_unavailable", code=1013)  # try again later
            return
        retry = (b"retry-after", str(retry_after).encode())
        if b"text/html" in accept:
            page = self.pages.store_unavailable(await self._language(scope)).encode()
            await respond(send, 503, [*self._headers.html, retry], page)
        else:
            await respond(send, 503, [*self._headers.json, retry], self._unavailable_json)

    async def _require_screen(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        accept: bytes,
        reading: bool = False,
        *,
        verified: bool = False,
    ) -> None:
        if scope["type"] == "websocket":
            await close_websocket(
                receive, send, "age_verification_required" if verified else "age_screen_required"
            )
            return
        root = scope.get("root_path") or ""
        if b"text/html" in accept:
            # Come back to the address as sent (still encoded): the decoded path can differ.
            raw = scope.get("raw_path")
            target = raw.decode("latin-1") if raw else root + path
            if reading:
                # Mode "all": a browser's first visit goes straight to the screen and back.
                location = self._screen_location(root, target, scope.get("query_string"))
                await respond(send, 303, [*self._headers.private, (b"location", location)], b"")
                return
            url = screen_url(root + self.prefix, safe_next(target, root + "/"))
            language = await self._language(scope)
            if verified:
                page = self.pages.verification_required(url, language).encode()
            else:
                page = self.pages.screen_required(url, language).encode()
            await respond(send, 428, self._headers.html, page)
            return
        if verified:
            found = {"error": "age_verification_required", "screen": root + self.prefix, "hint": _HINT}
            body = json_body(found) if root else self._verify_json
        elif root:
            body = json_body({"error": "age_screen_required", "screen": root + self.prefix})
        else:
            body = self._required_json
        await respond(send, 428, self._headers.json, b"" if scope["method"] == "HEAD" else body, len(body))

    def _screen_location(self, root: str, target: str, query: bytes | None) -> bytes:
        """The screen's address, for ``Location`` (ASCII), with ``next`` the address as sent,
        query included, when it is a same-site path (else the app's home page)."""
        home = quote(root, safe=_PATH_SAFE) + "/"
        back = safe_next(target, home)
        if query and back == target:
            back = safe_next(f"{target}?{query.decode('latin-1')}", back)
        return screen_url(home[:-1] + self.prefix, back).encode("ascii")

    def _needs_verified(self, paths: tuple[str, ...]) -> bool:
        """Whether any reading of the path is one that ``require_verified`` names."""
        patterns = self._require_verified
        return patterns is not None and any(patterns.match(path) for path in paths)

    def _digital_ids(self, credentials: CredentialVerifier | None, secure: bool) -> CredentialEndpoint | None:
        """The digital-ID endpoints, when the app accepts digital IDs (imported only then: the
        verifier's libraries are the optional extra ``agegate[credentials]``)."""
        if credentials is None:
            return None
        from ..credentials import CredentialVerifier
        from .credential import CredentialEndpoint

        if not isinstance(credentials, CredentialVerifier):
            raise ConfigurationError("credentials must be an agegate.credentials.CredentialVerifier")
        return CredentialEndpoint(
            self.gate,
            credentials,
            prefix=self.prefix,
            cookie=self._cookie,
            headers=self._headers,
            origins=self.origins,
            screen=self._screen,
            secure=secure,
        )

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
                message = {**message, "headers": self.signup_headers(notes, message.get("headers", ()))}
            await send(message)

        token = mark(self.gate, notes)
        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            unmark(token)

    def signup_headers(self, notes: Sequence[Decision], headers: Iterable[Header]) -> list[Header]:
        """A signup response's ``headers`` with the gate's cookie for the decisions in ``notes``
        (a sticky under-age one if any is under age) and without caching."""
        under = any(note.outcome == "under_age" for note in notes)
        # A response that sets the gate's cookie must not be cached for anyone else.
        out = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
        out += self._headers.private
        # Sealed under the weakest policy the app's decisions were reached under.
        reached = min((note.age_policy or self.gate.policy for note in notes), key=lambda p: p.min_age)
        out.append(self._cookie.set_cookie("under_age" if under else "allowed", reached))
        return out


async def _region_of(func: RegionFunc, scope: Scope) -> str | None:
    code: Any = func(scope)
    if inspect.isawaitable(code):
        code = await code
    if code is not None and not isinstance(code, str):
        raise ConfigurationError("region must return a region code (a string) or None")
    return code


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
