"""The gate's cookie: reading it from a ``Cookie`` header, opening and remembering its sealed
token, and writing a new one."""

from __future__ import annotations

import time
from http import cookies as http_cookies
from typing import Any, Final

from ..errors import InvalidToken
from ..gate import AgeGate, Decision
from ..tokens import Outcome

__all__ = ["COOKIE_NAME", "UNDER_AGE", "GateCookie", "read_cookie"]

COOKIE_NAME = "agegate"
#: What :meth:`GateCookie.result` answers for a cookie that says under age (under any policy).
UNDER_AGE: Final = object()
#: How many opened cookie tokens are remembered (they are a few hundred bytes each).
_OPENED_TOKENS = 4096


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


class GateCookie:
    """Reads and writes one gate's sealed cookie.

    ``secure=False`` drops ``Secure`` and the ``__Host-`` prefix, for plain-http development.
    """

    def __init__(self, gate: AgeGate, *, secure: bool) -> None:
        self._sealer = gate.sealer
        self._policy = gate.policy.name
        self._allowed = Decision.of("allowed", self._policy)
        self._opened: dict[str, tuple[int, Any]] = {}
        self.name = ("__Host-" if secure else "") + COOKIE_NAME
        attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        self._ttl: dict[Outcome, int] = {
            "allowed": int(gate.allowed_ttl.total_seconds()),
            "under_age": int(gate.under_age_ttl.total_seconds()),
        }
        self._attrs = {outcome: f"; Max-Age={ttl}{attrs}" for outcome, ttl in self._ttl.items()}

    def result(self, header: str | None) -> Any:
        """The allowed :class:`Decision`, :data:`UNDER_AGE`, or ``None`` for no usable cookie in
        the ``Cookie`` header ``header``."""
        if not header:
            return None
        token = read_cookie(header, self.name)
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
            found: Any = UNDER_AGE  # a child's answer counts under any policy
        else:
            # An allowed answer counts only under the policy it was given for.
            found = self._allowed if claims.policy == self._policy else None
        if len(self._opened) >= _OPENED_TOKENS:
            self._opened.clear()
        self._opened[token] = (claims.expires_at, found)
        return found

    def set_cookie(self, outcome: Outcome) -> tuple[bytes, bytes]:
        """A ``Set-Cookie`` header carrying a new sealed token for ``outcome``."""
        now = int(time.time())
        token = self._sealer.seal(outcome, self._policy, issued_at=now, expires_at=now + self._ttl[outcome])
        return (b"set-cookie", f"{self.name}={token}{self._attrs[outcome]}".encode("latin-1"))
