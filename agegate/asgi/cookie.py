"""The gate's cookie: its name, reading it from a ``Cookie`` header, opening and remembering its
sealed token, and writing a new one.

Each gate's cookie has a name of its own, so that two gated apps on one host (``/shop`` and
``/forum``, each with its own keys) never overwrite each other's cookie: ``__Host-`` forces
``Path=/``, so one shared name would let an adult's answer at one app erase a refusal at the
other. The name carries a short tag derived from the gate's active key (see :func:`cookie_name`)
unless the app names it (``AgeGateMiddleware(..., cookie_name=...)``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..decisions import Decision
from ..errors import ConfigurationError, InvalidToken
from ..gate import AgeGate
from ..keys import Keyring
from ..policy import AgePolicy
from ..regions import labelled_policy
from ..tokens import OUTCOMES, Outcome

__all__ = [
    "COOKIE_NAME",
    "UNDER_AGE",
    "GateCookie",
    "cookie_name",
    "read_cookie",
    "read_cookies",
]

#: The stem of every gate cookie's default name.
COOKIE_NAME = "agegate"
#: What :meth:`GateCookie.result` answers for a cookie that says under age (under any policy).
UNDER_AGE: Final = object()
#: The most opened cookie tokens remembered at once (a few hundred bytes each), in two
#: generations of half as many: see :meth:`GateCookie.result`.
_OPENED_TOKENS = 4096
_GENERATION = _OPENED_TOKENS // 2
_UNDER_AGE_INDEX = OUTCOMES.index("under_age")
#: The most policy labels whose reading is remembered (a gate seals a handful: one per region
#: policy it uses; only labels of tokens that opened get there).
_LABELS = 256
#: A cookie name an app may choose: RFC 6265 token characters, without the prefixes this
#: module adds itself.
_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,64}")
_SECURE_PREFIX = "__Host-"


def cookie_name(keys: Keyring, *, secure: bool = True, kid: str | None = None) -> str:
    """The default name of the cookie of a gate with keyring ``keys``: ``__Host-agegate-<tag>``
    (``agegate-<tag>`` when ``secure`` is false), where the tag is 12 hex digits derived with
    HKDF from the cookie key of ``kid`` (default: the active key). The tag tells nothing about
    the key; two gates share a name only when they share that key."""
    tag = HKDF(algorithm=hashes.SHA256(), length=6, salt=None, info=b"agegate/v1/cookie-name").derive(
        keys.purpose_key("cookie", kid)
    )
    return (_SECURE_PREFIX if secure else "") + f"{COOKIE_NAME}-{tag.hex()}"


#: A backslash escape in a quoted cookie value: three octal digits, or any one character.
_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))")


def _unquote(value: str) -> str:
    """A cookie value as Starlette reads it: a double-quoted value loses its quotes and its
    backslash escapes (``\\012`` is a line feed, ``\\"`` a quote); anything else is kept as
    it is. The same rule as the standard library's private ``http.cookies._unquote``, which
    Starlette calls, written out so that agegate relies on no private name."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    return _ESCAPE.sub(lambda m: chr(int(m[1], 8)) if m[1] else m[2], value[1:-1])


def read_cookie(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, exactly as Starlette's
    ``cookie_parser`` reads it (the last of several wins), without parsing the other cookies."""
    if name not in header:
        return None
    # Only a chunk holding the name can be the cookie. The common cases read just that one: a
    # header of one cookie, and the name in one chunk with none after it holding it (a browser
    # sends a dozen cookies or more; reading one chunk instead of all is most of the scan's
    # cost). A name with ';' in it fits no chunk, here as in the loop below.
    if ";" not in header:
        key, sep, value = header.partition("=")
    else:
        at = header.find(name)
        end = header.find(";", at)
        if end < 0:
            key, sep, value = header[header.rfind(";", 0, at) + 1 :].partition("=")
        elif header.find(name, end) < 0:
            key, sep, value = header[header.rfind(";", 0, at) + 1 : end].partition("=")
        else:
            return _last_of(header, name)
    return _unquote(value.strip()) if sep and key.strip() == name else None


def _last_of(header: str, name: str) -> str | None:
    """:func:`read_cookie` when several chunks hold the name: each one read, the last wins."""
    found: str | None = None
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        if sep and key.strip() == name:
            found = value
    if found is None:
        return None
    return _unquote(found.strip())


def read_cookies(header: str, names: frozenset[str]) -> list[str]:
    """The values of the cookies named in ``names`` in a ``Cookie`` header, each read as
    :func:`read_cookie` reads it."""
    found: dict[str, str] = {}
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        if sep and (key := key.strip()) in names:
            found[key] = value
    return [_unquote(value.strip()) for value in found.values()]


class GateCookie:
    """Reads and writes one gate's sealed cookie.

    ``secure=False`` drops ``Secure`` and the ``__Host-`` prefix, for plain-http development.
    ``name`` replaces the default name (:func:`cookie_name`); ``__Host-`` is put in front of it.
    A new cookie is written under that one name; the cookie is read under it and under the
    default names of every key in the keyring, so a key rotation (or a switch to a chosen name)
    drops no cookie the keys can still open. Only tokens the gate's own keys open count, and an
    under-age one wins over any other. An allowed token counts under a policy only when it was
    sealed under a minimum age at least as high (see :func:`agegate.regions.labelled_policy`).
    """

    def __init__(self, gate: AgeGate, *, secure: bool, name: str | None = None) -> None:
        prefix = _SECURE_PREFIX if secure else ""
        if name is not None:
            if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower().startswith("__"):
                raise ConfigurationError(
                    "cookie_name must be 1-64 cookie-name characters such as letters, digits, '-' "
                    "and '_', without a '__Host-' prefix (it is added)"
                )
            name = prefix + name
        self._sealer = gate.sealer
        self._own = gate.policy
        # Opened tokens, by token: (expiry, UNDER_AGE, or (the minimum age it was sealed under,
        # its decision), or None for a token that counts nowhere). The entry says what the token
        # is; the request's policy is compared with it afterwards (:func:`_counts`), so one entry
        # serves every region. New ones go into the recent generation;
        # when it is full it becomes the older one (the previous older one is dropped) and a
        # token found in the older one moves back to the recent one. So memory stays bounded
        # and a browser that keeps coming back is never forgotten, however many others come.
        self._recent: dict[str, tuple[int, Any]] = {}
        self._older: dict[str, tuple[int, Any]] = {}
        # Policy label (UTF-8) -> what an allowed token under it says, typed and verified.
        self._labels: dict[bytes, tuple[Any, Any]] = {}
        self.name = name or cookie_name(gate.keys, secure=secure)
        derived = (cookie_name(gate.keys, secure=secure, kid=kid) for kid in gate.keys.kids)
        self._names = frozenset((self.name, *derived))
        # The common case, one key and its own name: one cheap scan, as for any single cookie.
        self._only_name = self.name if len(self._names) == 1 else None
        attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        self._ttl: dict[Outcome, int] = {
            "allowed": int(gate.allowed_ttl.total_seconds()),
            "under_age": int(gate.under_age_ttl.total_seconds()),
        }
        self._attrs = {outcome: f"; Max-Age={ttl}{attrs}" for outcome, ttl in self._ttl.items()}

    def result(self, header: str | None, policy: AgePolicy | None = None) -> Any:
        """The allowed :class:`Decision`, :data:`UNDER_AGE`, or ``None`` for no usable cookie in
        the ``Cookie`` header ``header``, for a request under ``policy`` (default: the gate's
        own). The decision is the one the cookie was sealed with."""
        if not header:
            return None
        return self._found(header, (policy or self._own).min_age)

    def in_headers(self, headers: Iterable[tuple[bytes, bytes]], need: int) -> Any:
        """:meth:`result` for a request's ASGI ``headers`` (its ``Cookie`` headers joined as
        one), under a policy of minimum age ``need``: the middleware's hot path."""
        cookie: bytes | None = None
        for key, value in headers:
            if key == b"cookie":
                cookie = value if cookie is None else cookie + b"; " + value
        return None if cookie is None else self._found(cookie.decode("latin-1"), need)

    def _found(self, header: str, need: int) -> Any:
        if self._only_name is not None:
            token = read_cookie(header, self._only_name)
            if token is None:
                return None
            known = self._recent.get(token)  # the common case: a browser seen lately
            if known is not None and time.time() < known[0]:
                said = known[1]
            else:
                said = self._unknown(token, int(time.time()))
            if said is None or said is UNDER_AGE:
                return said
            return said[1] if said[0] >= need else None
        now = int(time.time())
        found: Any = None
        for token in read_cookies(header, self._names):
            result = self._open(token, now)
            if result is UNDER_AGE:
                return UNDER_AGE  # a refusal under any of the gate's names wins
            counted = _counts(result, need)
            if found is None or (counted is not None and counted.verified):
                found = counted  # a verified answer under any name wins over a typed one
        return found

    def _open(self, token: str, now: int) -> Any:
        # A browser sends the same token for months: remember what a token that opened says,
        # until it expires, instead of decrypting it on every request. Only tokens that opened
        # get here, so a forged one can never be served from memory.
        known = self._recent.get(token)
        if known is not None and now < known[0]:
            return known[1]
        return self._unknown(token, now)

    def _unknown(self, token: str, now: int) -> Any:
        """:meth:`_open` for a token not in the recent generation (or expired there)."""
        known = self._older.get(token)
        if known is not None and now < known[0]:
            self._remember(token, known)  # a browser that keeps coming back stays remembered
            return known[1]
        try:
            index, _, expires_at, label, verified = self._sealer.open_fields(token, now)
        except InvalidToken:
            return None
        if index == _UNDER_AGE_INDEX:
            found: Any = UNDER_AGE  # a child's answer counts under any policy
        else:
            known = self._labels.get(label)
            if known is None:
                known = self._labels[label] = self._read_label(label)
            found = known[verified]
        # (self._remember, inline: this runs for every browser's first request.)
        recent = self._recent
        if len(recent) >= _GENERATION:
            self._older = recent
            self._recent = recent = {}
        recent[token] = (expires_at, found)
        return found

    def _read_label(self, label: bytes) -> tuple[Any, Any]:
        """What an allowed token sealed under ``label`` says: typed, and verified."""
        if len(self._labels) >= _LABELS:
            self._labels.clear()
        # An allowed answer counts only under policies no stricter than the one it was given
        # for; one whose age cannot be known (an old or foreign label) counts nowhere. A
        # verified one (a digital ID) stays verified under the same rule, never beyond it.
        try:
            reached = labelled_policy(label.decode(), self._own)
        except UnicodeDecodeError:
            reached = None
        if reached is None:
            return None, None
        decision = Decision.of("allowed", reached)
        return (reached.min_age, decision), (reached.min_age, replace(decision, verified=True))

    def _remember(self, token: str, entry: tuple[int, Any]) -> None:
        recent = self._recent
        if len(recent) >= _GENERATION:
            self._older = recent
            self._recent = recent = {}
        recent[token] = entry

    def forget(self) -> None:
        """Forget every opened token (the next request with each one opens it again)."""
        self._recent = {}
        self._older = {}

    def set_cookie(
        self, outcome: Outcome, policy: AgePolicy | None = None, *, verified: bool = False
    ) -> tuple[bytes, bytes]:
        """A ``Set-Cookie`` header carrying a new sealed token for ``outcome`` reached under
        ``policy`` (default: the gate's own); ``verified``: the answer came from a verified
        digital ID."""
        now = int(time.time())
        label = (policy or self._own).label
        expires = now + self._ttl[outcome]
        token = self._sealer.seal(outcome, label, issued_at=now, expires_at=expires, verified=verified)
        return (b"set-cookie", f"{self.name}={token}{self._attrs[outcome]}".encode("latin-1"))


def _counts(found: Any, need: int) -> Any:
    """What an opened token (see :meth:`GateCookie._open`) says for a policy of age ``need``."""
    if found is None or found is UNDER_AGE:
        return found
    threshold, decision = found
    return decision if threshold >= need else None
