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

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from ..decisions import SCOPE_KEY, Decision
from ..errors import ConfigurationError, InvalidSignal, StoreUnavailable
from ..gate import AgeGate
from ..hook import mark, unmark
from ..regions import REGION_KEY, RegionFunc
from .account import SubjectFunc, account_status, record_under_age, region_of
from .answers import Header, Headers, Unavailable, accept_of, close_websocket, respond
from .cookie import UNDER_AGE, GateCookie
from .language import LanguageChooser, LocaleFunc
from .lifespan import run_lifespan
from .origin import OriginRule
from .pages import Pages, json_body, screen_url
from .paths import OPEN, SIGNUP, PathRules, Patterns, readings, safe_next, screen_location
from .prefix import PrefixEndpoints
from .signup_path import SignupCookie

if TYPE_CHECKING:
    from ..credentials import CredentialVerifier
    from .signals import SignalFunc

__all__ = ["MODES", "SAFE_METHODS", "AgeGateMiddleware", "Mode", "SubjectFunc"]

#: What the gate guards: ``"writes"`` (unsafe methods and websockets) or ``"all"`` (reads too).
Mode = Literal["writes", "all"]
MODES: tuple[Mode, ...] = ("writes", "all")

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
        for name, func in (("subject", subject), ("region", region), ("signal", signal)):
            if func is not None and not callable(func):
                raise ConfigurationError(f"{name} must be a function of the ASGI scope, or None")
        if not isinstance(secure_cookies, bool):
            raise ConfigurationError("secure_cookies must be True or False")
        if pages is not None and not isinstance(pages, Pages):
            raise ConfigurationError("pages must be an agegate.Pages")
        if not isinstance(mode, str) or mode not in MODES:
            raise ConfigurationError('mode must be "writes" (the default) or "all"')
        self.app, self.gate, self.prefix, self.mode = app, gate, prefix, mode
        #: The methods that pass without a screen result, whatever the path (in mode "all",
        #: reads go on to be gated).
        self._passing = SAFE_METHODS if mode == "writes" else _PREFLIGHT
        self.pages = pages or Pages()
        self._paths = PathRules(prefix=prefix, protect=protect, exempt=exempt, signup_paths=signup_paths)
        self._gates_all = self._paths.gates_all
        self._subject, self._region, self._signal = subject, region, signal
        if signal is not None:
            from .signals import read_signal  # loaded by an app that reads age signals only

            self._read_signal = read_signal
        self._allowed = Decision.of("allowed", gate.policy.name)
        #: Whether the cookie alone decides, under the gate's own policy (no account, signal,
        #: region or verified-only paths to ask), of this minimum age.
        self._cookie_decides = not require_verified and all(f is None for f in (subject, signal, region))
        self._need = gate.policy.min_age
        self._cookie = GateCookie(gate, secure=secure_cookies, name=cookie_name)
        self.cookie_name = self._cookie.name
        #: The cross-site rule, for everywhere the gate writes its cookie.
        self.origins = OriginRule(origins, trust_forwarded_host=trust_forwarded_host)
        self._language = LanguageChooser(locale)
        self._headers = Headers(self.pages, vary_language=self._language.varies)
        self._unavailable = Unavailable(self.pages, self._headers, self._language)
        self._endpoints = PrefixEndpoints(
            gate,
            paths=self._paths,
            pages=self.pages,
            cookie=self._cookie,
            headers=self._headers,
            origins=self.origins,
            language=self._language,
            unavailable=self._unavailable,
            whole_service=mode == "all",
            credentials=credentials,
            secure=secure_cookies,
            region=region,
        )
        self._screen = self._endpoints.screen
        self._signup_cookie = SignupCookie(
            gate, self._cookie, self._headers.private, self.origins, self._screen
        )
        self._require_verified = Patterns("require_verified", require_verified) if require_verified else None
        if self._require_verified is not None and credentials is None:
            raise ConfigurationError(
                "require_verified needs credentials= (a CredentialVerifier): nobody could pass"
            )
        self._verify_json = json_body({"error": "age_verification_required", "screen": prefix, "hint": _HINT})
        # Prebuilt early answers: the blocked path only sends bytes (pages are kept per language).
        self._restricted_json = json_body({"error": "age_restricted"})
        self._required_json = json_body({"error": "age_screen_required", "screen": prefix})
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
                if self._cookie_decides:
                    found = self._cookie.in_headers(scope["headers"], self._need)
                    if found is UNDER_AGE:
                        await self._block(scope, receive, send)
                        return
                    if found is not None:
                        # The common case, in this frame: an allowed cookie, nothing else to ask.
                        scope[SCOPE_KEY] = found
                        token = mark(self.gate, None)
                        try:
                            await self.app(scope, receive, send)
                        finally:
                            unmark(token)
                        return
                await self._gated(scope, receive, send, None, signup=False, reading=method in SAFE_METHODS)
            else:
                await self._dispatch(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            paths = readings(scope)
            if await self._endpoints.serve(scope, receive, send, paths):
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
            await self._pass_on(scope, receive, send)
            return
        signup = rule == SIGNUP and kind == "http"
        # Only in mode "all": a GET or HEAD that needs a screen result.
        reading = kind == "http" and scope["method"] in SAFE_METHODS
        if signup and not reading and await self._signup_cookie.refused_cross_site(scope, send):
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
        policy = self.gate.policy
        if self._region is not None:
            # Also for the app's signup hook (agegate.signup_fields), in request memory only.
            try:
                region = scope[REGION_KEY] = await region_of(self._region, scope)
            except StoreUnavailable as exc:  # the app's region function is wrong (logged)
                await self._unavailable(scope, receive, send, exc.retry_after)
                return
            policy = self.gate.policy_for(region)
        found = self._cookie.in_headers(scope["headers"], policy.min_age)
        if self._signal is not None:
            # Read even when the cookie refuses: an under-age signal is recorded for the account.
            try:
                read = await self._read_signal(self._signal, scope, self.gate, region)
            except InvalidSignal:
                await self._refuse_signal(scope, receive, send)
                return
            if read is not None and read[1] is not None:
                if not read[1].allowed:
                    # Refused; with an account, recorded against it (actual knowledge). The
                    # refusal stands even when the record cannot be written now.
                    await record_under_age(self.gate, self._subject, scope, read[0], region)
                    await self._block(scope, receive, send)
                    return
                found = found or read[1]
        if found is UNDER_AGE:
            await self._block(scope, receive, send)
            return
        decision = found
        if self._subject is not None:
            try:
                status = await account_status(self.gate, self._subject, scope, region)
            except StoreUnavailable as exc:
                # Whether the account was purged as a child's cannot be known: refuse, for now
                # (or until the store is mended); the app is not called.
                await self._unavailable(scope, receive, send, exc.retry_after)
                return
            if status == "under_age":
                await self._block(scope, receive, send)
                return
            # A verified cookie stays verified: the account's attestation does not record it.
            if status == "allowed" and (decision is None or not decision.verified):
                decision = self._allowed if region is None else Decision.of("allowed", policy)

        if signup and not reading:
            await self._signup_cookie(self.app, scope, receive, send, decision)
            return
        verified = decision is not None and decision.verified
        if self._require_verified is not None and not verified and not signup:
            paths = paths or readings(scope)
            if self._require_verified.match_any(paths):
                await self._require_screen(scope, receive, send, paths[0], verified=True)
                return
        if decision is None and not signup:  # a signup form is read before its inline screen
            path = (paths or readings(scope))[0]  # the path the app routes on
            await self._require_screen(scope, receive, send, path, reading)
            return
        if decision is not None:
            scope[SCOPE_KEY] = decision
        await self._pass_on(scope, receive, send)

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = mark(self.gate, None)  # a signup in this request would write no cookie: refused
        try:
            await self.app(scope, receive, send)
        finally:
            unmark(token)

    async def _refuse_signal(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "invalid_age_signal")
        else:
            await respond(send, 400, self._headers.json, self._invalid_signal_json)

    async def _block(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await close_websocket(receive, send, "age_restricted")
            return
        if b"text/html" not in accept_of(scope):
            headers, body = self._headers.json, self._restricted_json
        else:
            home = (scope.get("root_path") or "") + "/"
            headers, body = self._headers.html, self._screen.under_age_page(home, await self._language(scope))
        if scope["method"] == "HEAD":
            await respond(send, 403, headers, b"", len(body))
        else:
            await respond(send, 403, headers, body)

    async def _require_screen(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
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
        if b"text/html" in accept_of(scope):
            # Come back to the address as sent (still encoded): the decoded path can differ.
            raw = scope.get("raw_path")
            target = raw.decode("latin-1") if raw else root + path
            if reading:
                # Mode "all": a browser's first visit goes straight to the screen and back.
                location = screen_location(root, self.prefix, target, scope.get("query_string"))
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

    def signup_headers(self, notes: Sequence[Decision], headers: Iterable[Header]) -> list[Header]:
        """A signup response's ``headers`` with the gate's cookie for the decisions in ``notes``
        (a sticky under-age one if any is under age) and without caching."""
        return self._signup_cookie.headers(notes, headers)
