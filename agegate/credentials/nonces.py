"""The nonce of a digital-ID request: bound to one visitor, short-lived, single use.

The nonce travels to the visitor's browser twice: in the request the wallet signs, and sealed
(AES-GCM, the keyring's ``credential`` purpose key) in a short-lived cookie. A presentation is
checked against the nonce in *its sender's* cookie, so one made for another visitor's request
fails; each nonce is then spent in process memory, so the same presentation cannot be posted
twice to this instance. (Several instances share no memory: there, a replay is caught only on
the instance that saw it first; the cookie still binds it to the one visitor, for minutes.)
"""

from __future__ import annotations

import base64
import os
import struct
import time

from ..errors import CredentialRefused, InvalidToken
from ..keys import Keyring
from ..tokens import Sealer, _b64decode, _b64encode

__all__ = ["NONCE_TTL", "NonceBook"]

#: How long a digital-ID request stays usable, in seconds.
NONCE_TTL = 300
#: Most nonces remembered as spent at once; past this, new presentations wait (refused).
MAX_SPENT = 100_000
_EXPIRY = struct.Struct(">Q")
_NONCE_BYTES = 32


def _wrong_nonce() -> CredentialRefused:
    return CredentialRefused(
        "wrong_nonce", "This digital ID's answer was made for another request; please try again."
    )


class NonceBook:
    """Issues nonces sealed for a cookie, opens them again, and spends each one once."""

    def __init__(self, keys: Keyring, *, ttl: int = NONCE_TTL) -> None:
        self._sealer = Sealer(keys, "credential")
        self.ttl = ttl
        self._spent: dict[str, int] = {}

    def issue(self, now: int | None = None) -> tuple[str, str]:
        """A fresh nonce and the sealed cookie value that carries it."""
        issued = int(time.time()) if now is None else now
        raw = os.urandom(_NONCE_BYTES)
        sealed = self._sealer.seal_bytes(_EXPIRY.pack(issued + self.ttl) + raw)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"), _b64encode(sealed)

    def open(self, sealed: str | None, now: int | None = None) -> str:
        """The nonce sealed in cookie value ``sealed``; :class:`~agegate.CredentialRefused`
        (``wrong_nonce``) when there is none, or it is foreign, changed or expired."""
        current = int(time.time()) if now is None else now
        if not sealed:
            raise _wrong_nonce()
        try:
            payload = self._sealer.open_bytes(_b64decode(sealed))
        except InvalidToken:
            raise _wrong_nonce() from None
        if len(payload) != _EXPIRY.size + _NONCE_BYTES or current >= _EXPIRY.unpack_from(payload)[0]:
            raise _wrong_nonce()
        return base64.urlsafe_b64encode(payload[_EXPIRY.size :]).rstrip(b"=").decode("ascii")

    def spend(self, nonce: str, now: int | None = None) -> None:
        """Mark ``nonce`` used; :class:`~agegate.CredentialRefused` (``nonce_reused``) if it
        already was."""
        current = int(time.time()) if now is None else now
        if nonce in self._spent:
            raise CredentialRefused(
                "nonce_reused", "This digital ID's answer was already used; please try again."
            )
        if len(self._spent) >= MAX_SPENT:
            self._spent = {key: until for key, until in self._spent.items() if until > current}
            if len(self._spent) >= MAX_SPENT:
                raise CredentialRefused("busy", "Too many digital IDs at once; please try again in a moment.")
        self._spent[nonce] = current + self.ttl
