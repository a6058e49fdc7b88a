"""Sealed cookie tokens (AES-GCM) and keyed hashes (HMAC-SHA256).

Token layout, base64url without padding::

    version (1 byte) | key id length (1) | key id | nonce (12) | AES-GCM(payload) + tag (16)

The version and key id travel in the clear and are bound to the ciphertext as associated data,
together with the token's purpose. The payload holds only the outcome, the policy name, and the
issue and expiry times. Every failure to open raises the same :class:`InvalidToken`.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from .errors import InvalidInput, InvalidToken
from .keys import Keyring, Purpose

__all__ = ["MAX_CLOCK_SKEW", "OUTCOMES", "VERSION", "Claims", "Hasher", "Outcome", "Sealer", "sealed_kid"]

Outcome = Literal["allowed", "under_age"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "under_age")
VERSION = 1
#: How far in the future an issue time may lie (clock skew between instances), in seconds.
MAX_CLOCK_SKEW = 60
_HEADER = struct.Struct(">BQQ")  # outcome index, issued-at, expires-at (Unix seconds)
_HEADER_SIZE = _HEADER.size
_N_OUTCOMES = len(OUTCOMES)
#: Set in the outcome byte of a token whose answer came from a verified digital ID.
_VERIFIED = 0x80
_NONCE = 12
_MAX_TOKEN_CHARS = 512
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_VALUE = {char: value for value, char in enumerate(_B64_ALPHABET)}
_STRAY_BITS = (0, 0, 0b1111, 0b11)  # by length % 4: low bits of the last character that carry no data
_PADDING = (b"", b"", b"==", b"=")
# base64url to standard base64; '+', '/' and '=' are not in the unpadded base64url alphabet, so
# they become '*', which the strict decoder refuses like any other stray character.
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/***")


class Claims(NamedTuple):
    """What a sealed token says. (A named tuple: built on every cookie opened, it must be cheap.)"""

    outcome: Outcome
    policy: str
    issued_at: int
    expires_at: int
    verified: bool = False

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # Strict: only the canonical unpadded base64url spelling of the bytes opens, so no two
    # different cookie strings carry the same token: the alphabet only (binascii's strict
    # mode), no padding, and no stray bits in the last character (which a lenient decoder
    # would ignore). Every cookie a worker has not seen comes here: no regex, no extra copies.
    if not isinstance(text, str) or len(text) > _MAX_TOKEN_CHARS:
        raise InvalidToken()
    tail = len(text) % 4
    if tail == 1 or (tail and _B64_VALUE.get(text[-1], 0) & _STRAY_BITS[tail]):
        raise InvalidToken()
    try:
        raw = text.encode("ascii").translate(_FROM_URLSAFE) + _PADDING[tail]
        return binascii.a2b_base64(raw, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidToken() from None


class Sealer:
    """Seals and opens tokens for one purpose; AES-GCM objects are built once per key."""

    __slots__ = ("_active", "_ciphers", "_openers", "_purpose")

    def __init__(self, keyring: Keyring, purpose: Purpose = "cookie") -> None:
        self._purpose = purpose.encode()
        self._active = keyring.active_kid
        self._ciphers = {kid: AESGCM(keyring.purpose_key(purpose, kid)) for kid in keyring.kids}
        # By the key id's bytes as they stand in a token: its cipher and associated data, ready.
        self._openers = {
            kid.encode(): (cipher, self._aad(kid.encode())) for kid, cipher in self._ciphers.items()
        }

    def _aad(self, kid: bytes) -> bytes:
        return b"agegate/" + self._purpose + bytes((VERSION, len(kid))) + kid

    def seal_bytes(self, payload: bytes) -> bytes:
        """Encrypt ``payload`` under the active key; returns the raw token bytes."""
        kid = self._active.encode()
        nonce = os.urandom(_NONCE)
        head = bytes((VERSION, len(kid))) + kid
        return head + nonce + self._ciphers[self._active].encrypt(nonce, payload, self._aad(kid))

    def open_bytes(self, token: bytes) -> bytes:
        """Decrypt raw token bytes sealed under any listed key; raises :class:`InvalidToken`."""
        if len(token) < 2 or token[0] != VERSION:
            raise InvalidToken()
        end = 2 + token[1]
        if len(token) < end + _NONCE + 16:
            raise InvalidToken()
        opener = self._openers.get(token[2:end])
        if opener is None:
            raise InvalidToken()
        cipher, aad = opener
        try:
            return cipher.decrypt(token[end : end + _NONCE], token[end + _NONCE :], aad)
        except InvalidTag:
            raise InvalidToken() from None

    def seal(
        self, outcome: Outcome, policy: str, *, issued_at: int, expires_at: int, verified: bool = False
    ) -> str:
        """A cookie-safe token holding the outcome, policy and times, and whether the answer
        came from a verified digital ID."""
        index = OUTCOMES.index(outcome) | (_VERIFIED if verified else 0)
        payload = _HEADER.pack(index, issued_at, expires_at) + policy.encode()
        return _b64encode(self.seal_bytes(payload))

    def open(self, token: str, *, now: datetime | int | None = None) -> Claims:
        """Open a token from :meth:`seal`; raises :class:`InvalidToken` for any failure,
        including expiry and an issue time in the future beyond :data:`MAX_CLOCK_SKEW`."""
        index, issued_at, expires_at, policy, verified = self.open_fields(token, _unix(now))
        try:
            return Claims(OUTCOMES[index], policy.decode(), issued_at, expires_at, verified)
        except UnicodeDecodeError:
            raise InvalidToken() from None

    def open_fields(self, token: str, now: int) -> tuple[int, int, int, bytes, bool]:
        """:meth:`open` for a caller on the request path: ``(index of the outcome in
        OUTCOMES, issued at, expires at, policy label as UTF-8 bytes, verified)``, checked the
        same way except that the policy label is not decoded. ``now`` is in Unix seconds."""
        payload = self.open_bytes(_b64decode(token))
        if len(payload) < _HEADER_SIZE:
            raise InvalidToken()
        byte, issued_at, expires_at = _HEADER.unpack_from(payload)
        index = byte & ~_VERIFIED
        if index >= _N_OUTCOMES or now >= expires_at or issued_at > now + MAX_CLOCK_SKEW:
            raise InvalidToken()
        return index, issued_at, expires_at, payload[_HEADER_SIZE:], bool(byte & _VERIFIED)


def sealed_kid(token: bytes) -> str | None:
    """The key id a raw sealed token (:meth:`Sealer.seal_bytes`) names, or ``None`` if it names
    none readably. Says nothing about whether the token opens."""
    if len(token) < 2 or token[0] != VERSION or len(token) < 2 + token[1]:
        return None
    try:
        return token[2 : 2 + token[1]].decode("ascii")
    except UnicodeDecodeError:
        return None


def _unix(now: datetime | int | None) -> int:
    if now is None:
        return int(datetime.now(UTC).timestamp())
    if isinstance(now, int):
        return now
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    return int(now.timestamp())


def _frame(*parts: str) -> bytes:
    """Length-prefixed fields, so no two different field lists hash the same."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


class Hasher:
    """Keyed hashes (HMAC-SHA256) for one purpose, pre-keyed once per key id.

    :meth:`digest` uses the active key; :meth:`digests` gives one per listed key, active
    first, for lookups that must still find records written under an older key.
    """

    __slots__ = ("_active", "_macs")

    def __init__(self, keyring: Keyring, purpose: Purpose) -> None:
        self._active = keyring.active_kid
        self._macs = {kid: HMAC(keyring.purpose_key(purpose, kid), hashes.SHA256()) for kid in keyring.kids}

    @property
    def active_kid(self) -> str:
        return self._active

    def digest(self, *parts: str, kid: str | None = None) -> bytes:
        mac = self._macs.get(kid or self._active)
        if mac is None:
            raise InvalidToken()
        h = mac.copy()
        h.update(_frame(*parts))
        return h.finalize()

    def digests(self, *parts: str) -> list[bytes]:
        message = _frame(*parts)
        out = []
        for mac in self._macs.values():
            h = mac.copy()
            h.update(message)
            out.append(h.finalize())
        return out

    def verify(self, expected: bytes, *parts: str, kid: str) -> bool:
        """Constant-time check that ``expected`` is the digest of ``parts`` under ``kid``."""
        mac = self._macs.get(kid)
        if mac is None:
            return False
        h = mac.copy()
        h.update(_frame(*parts))
        try:
            h.verify(expected)
        except InvalidSignature:
            return False
        return True
