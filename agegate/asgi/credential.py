"""The digital-ID endpoints under the gate's prefix (only when the app gives the middleware a
:class:`~agegate.credentials.CredentialVerifier`).

- ``GET {prefix}/dc.js``: the screen's small script (feature detection, the wallet call).
- ``POST {prefix}/credential/request``: a fresh OpenID4VP request for ``age_over_NN`` (the
  minimum age of the request's region policy, :meth:`AgeGate.policy_for`); its nonce is
  sealed in a short-lived cookie of this visitor.
- ``POST {prefix}/credential`` (JSON, the API's ``{"protocol", "data"}``): the wallet's answer,
  verified against that nonce; a verified answer sets the gate's cookie, marked verified; any
  failure is ``400 {"error": "credential_refused", "code": …}`` and sets nothing.

Both POSTs follow the screen's cross-site rule.
"""

from __future__ import annotations

import json
import logging
from importlib.resources import files
from typing import Any

from starlette.types import Receive, Scope, Send

from ..credentials import CredentialRefused, CredentialVerifier, NonceBook, outcome_of
from ..gate import AgeGate
from ..policy import AgePolicy
from ..regions import REGION_KEY
from .answers import Header, Headers, respond
from .cookie import UNDER_AGE, GateCookie, read_cookie
from .endpoints import Screen, screen_headers
from .forms import FormRefused, is_json, media_type, read_bounded
from .origin import OriginRule, _own_origin
from .pages import json_body

__all__ = ["CredentialEndpoint"]

_log = logging.getLogger("agegate.credentials")
#: Largest wallet answer accepted, in bytes (an mdoc with its certificate chain is a few KiB).
MAX_ANSWER = 64 * 1024
_SCRIPT = files("agegate.asgi").joinpath("dc.js").read_bytes()
_SCRIPT_HEADERS: list[Header] = [
    (b"content-type", b"text/javascript; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
]


class CredentialEndpoint:
    """The digital-ID endpoints of one gate; :meth:`route` says which one a path is."""

    def __init__(
        self,
        gate: AgeGate,
        verifier: CredentialVerifier,
        *,
        prefix: str,
        cookie: GateCookie,
        headers: Headers,
        origins: OriginRule,
        screen: Screen,
        secure: bool,
    ) -> None:
        self.gate = gate
        self.verifier = verifier
        self.nonces = NonceBook(gate.keys)
        self.cookie = cookie
        self.headers = headers
        self.origins = origins
        self.screen = screen
        self._routes = {
            prefix + "/dc.js": "script",
            prefix + "/credential/request": "request",
            prefix + "/credential": "verify",
        }
        #: The short-lived cookie holding the sealed nonce of this visitor's pending request.
        self.nonce_cookie = cookie.name + "-dc"
        attrs = "; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        self._set_nonce = f"{self.nonce_cookie}={{}}; Max-Age={self.nonces.ttl}{attrs}"
        self._clear_nonce = (b"set-cookie", f"{self.nonce_cookie}=; Max-Age=0{attrs}".encode("latin-1"))

    def route(self, paths: tuple[str, ...]) -> str | None:
        """``"script"``, ``"request"`` or ``"verify"`` when every reading of the path is that
        endpoint's, else ``None``."""
        found = {self._routes.get(path) for path in paths}
        return found.pop() if len(found) == 1 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        method = scope["method"]
        seen = screen_headers(scope)
        html = b"text/html" in seen.get(b"accept", b"")
        root = scope.get("root_path") or ""
        if route == "script":
            if method not in ("GET", "HEAD"):
                allow = [(b"allow", b"GET, HEAD")]
                await self.screen.error(send, html, 405, "method_not_allowed", allow, root=root, scope=scope)
                return
            await respond(send, 200, _SCRIPT_HEADERS, b"" if method == "HEAD" else _SCRIPT, len(_SCRIPT))
            return
        if method != "POST":
            allow = [(b"allow", b"POST")]
            await self.screen.error(send, html, 405, "method_not_allowed", allow, root=root, scope=scope)
            return
        if self.origins.cross_origin(scope, seen):
            await self.screen.error(send, html, 403, "cross_site_request", root=root, scope=scope)
            return
        # The age asked for and answered is the request's region's (the gate's own without one).
        policy = self.gate.policy_for(scope.get(REGION_KEY))
        if route == "request":
            nonce, sealed = self.nonces.issue()
            body = json_body(self.verifier.request(nonce, policy.min_age))
            cookie = (b"set-cookie", self._set_nonce.format(sealed).encode("latin-1"))
            await respond(send, 200, [*self.headers.json, cookie], body)
            return
        await self._verify(scope, receive, send, seen, policy)

    async def _verify(
        self, scope: Scope, receive: Receive, send: Send, seen: dict[bytes, bytes], policy: AgePolicy
    ) -> None:
        header = seen.get(b"cookie", b"").decode("latin-1")
        if self.cookie.result(header) is UNDER_AGE:
            # Sticky, as on the screen: an under-age answer stays until its cookie expires.
            await respond(send, 200, self.headers.json, json_body({"outcome": "under_age"}))
            return
        if not is_json(media_type(seen.get(b"content-type"))):
            await self._refuse(send, 415, {"error": "unsupported_media_type"})
            return
        try:
            raw = await read_bounded(seen.get(b"content-length"), receive, MAX_ANSWER)
        except FormRefused as refused:
            await self._refuse(send, refused.status, {"error": refused.error})
            return
        if raw is None:
            return  # the client went away
        try:
            nonce = self.nonces.open(read_cookie(header, self.nonce_cookie) if header else None)
            self.nonces.spend(nonce)
            presentation = self.verifier.verify(_answer_data(raw), nonce=nonce, origin=_origin(scope, seen))
            outcome = outcome_of(presentation, policy.min_age)
        except CredentialRefused as refused:
            _log.info("a digital ID was refused: %s", refused.code)
            why = {"error": "credential_refused", "code": refused.code, "message": refused.message}
            await self._refuse(send, 400, why)
            return
        except Exception as exc:
            # A library that chokes on a crafted answer: refused like any other bad answer.
            _log.warning("a digital ID could not be read (%s)", type(exc).__name__)
            message = "This digital ID's answer could not be read."
            await self._refuse(
                send, 400, {"error": "credential_refused", "code": "malformed", "message": message}
            )
            return
        # Sealed under the request's policy: a verified answer counts only where that age is enough.
        cookie = self.cookie.set_cookie(outcome, policy, verified=outcome == "allowed")
        body = json_body({"outcome": outcome, "verified": True})
        await respond(send, 200, [*self.headers.json, cookie, self._clear_nonce], body)

    async def _refuse(self, send: Send, status: int, body: dict[str, Any]) -> None:
        await respond(send, status, [*self.headers.json, self._clear_nonce], json_body(body))


def _answer_data(raw: bytes) -> Any:
    """The OpenID4VP response in a posted body: the API's ``{"protocol", "data"}`` (``data``
    may come as a JSON string) or the bare response."""
    try:
        body = json.loads(raw)
        data = body.get("data", body) if isinstance(body, dict) else None
        if isinstance(data, str):
            data = json.loads(data)
    except (ValueError, RecursionError):
        raise CredentialRefused("malformed", "This digital ID's answer could not be read.") from None
    if not isinstance(data, dict):
        raise CredentialRefused("malformed", "This digital ID's answer could not be read.")
    return data


def _origin(scope: Scope, seen: dict[bytes, bytes]) -> str:
    """The page's origin, as the browser told the wallet: the request's ``Origin`` (the
    cross-site rule has already refused a foreign one), else its own ``scheme://host``."""
    sent = seen.get(b"origin")
    if sent:
        return sent.decode("latin-1").lower()
    return _own_origin(scope, seen, str(scope.get("scheme") or "http")) or ""
