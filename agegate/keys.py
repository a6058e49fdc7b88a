"""Secret keys: ``keyid:base64key`` entries, HKDF-SHA256 purpose keys, rotation.

The first key signs and seals; every listed key verifies. A store remembers which key ids its
records need (see :mod:`agegate.keycheck`): a key can be dropped once the store no longer needs it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable
from typing import Literal, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyringError

__all__ = ["DEFAULT_ENV_VAR", "MIN_KEY_BYTES", "PURPOSES", "Keyring", "Purpose"]

#: What each derived key is for (HKDF info); one leaked purpose key opens nothing else.
Purpose = Literal[
    "cookie",
    "attestation",
    "subject",
    "identifier",
    "journal",
    "receipt",
    "check",  # the store's check value per key id: tells the right key from another of that id
    "credential",  # the digital-ID request's nonce cookie (agegate.credentials)
    "report",  # reports from parents: what the reporter typed, sealed until it is answered
    "flag",  # the keyed hash under which an account flagged by an age signal is kept
]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

#: Shortest accepted secret key, in bytes.
MIN_KEY_BYTES = 32
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
DEFAULT_ENV_VAR = "AGEGATE_SECRET_KEYS"
#: Longest repeating pattern (in bytes) that makes a key degenerate: ``00 00 …``, ``ab ab ab …``.
_DEGENERATE_PERIOD = 4
# Never suggest a new key here: an app whose store already exists needs its own keys, and a new
# one would be refused by the store (it cannot read what the old keys wrote).
_NO_KEYS = (
    "no secret keys given: set {var} to the app's keys (the value the running app uses; "
    "a new key cannot read an existing store)"
)


def _degenerate(secret: bytes) -> bool:
    """Whether ``secret`` is one byte, or a pattern of a few bytes, repeated (all zero, say)."""
    return any(
        secret == secret[:period] * (len(secret) // period) + secret[: len(secret) % period]
        for period in range(1, _DEGENERATE_PERIOD + 1)
    )


def _derive(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"agegate/v1/" + purpose.encode()
    ).derive(secret)


class Keyring:
    """An ordered set of secret keys, each with an id; the first is active.

    Build one with :meth:`from_env`, :meth:`from_string` or :meth:`generate`. Purpose keys are
    derived once, when the keyring is built, one per (key, purpose).
    """

    __slots__ = ("_derived", "_secrets")

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        entries = list(keys)
        if not entries:
            raise KeyringError(_NO_KEYS.format(var=DEFAULT_ENV_VAR))
        seen: set[str] = set()
        for kid, secret in entries:
            if not isinstance(kid, str) or _KID.fullmatch(kid) is None:
                raise KeyringError("a key id must be 1-32 characters of letters, digits, '_' or '-'")
            if kid in seen:
                raise KeyringError(f"key id {kid!r} is listed twice")
            seen.add(kid)
            if not isinstance(secret, bytes) or len(secret) < MIN_KEY_BYTES:
                raise KeyringError(
                    f"key {kid!r} is too short: it must decode to at least {MIN_KEY_BYTES} bytes"
                )
            if _degenerate(secret):
                raise KeyringError(
                    f"key {kid!r} is not a secret: it is one byte (or a few) repeated; "
                    "a key must be random bytes"
                )
        self._secrets: dict[str, bytes] = dict(entries)
        self._derived: dict[tuple[str, str], bytes] = {
            (kid, purpose): _derive(secret, purpose) for kid, secret in entries for purpose in PURPOSES
        }

    @classmethod
    def from_string(cls, text: str) -> Keyring:
        """Parse ``"kid:base64key,kid2:base64key2"``; the first entry is the active key."""
        if not isinstance(text, str) or not text.strip():
            raise KeyringError(_NO_KEYS.format(var=DEFAULT_ENV_VAR))
        entries: list[tuple[str, bytes]] = []
        for position, item in enumerate(text.split(","), start=1):
            item = item.strip()
            kid, sep, encoded = item.partition(":")
            if not sep or not kid or not encoded:
                raise KeyringError(f"secret key entry {position} is not in keyid:base64key form")
            try:
                padded = encoded.strip() + "=" * (-len(encoded.strip()) % 4)
                secret = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                # Name the id only when it is one: a swapped entry would put the secret here.
                named = f" ({kid.strip()!r})" if _KID.fullmatch(kid.strip()) else ""
                raise KeyringError(f"secret key entry {position}{named} is not valid base64") from None
            entries.append((kid.strip(), secret))
        return cls(entries)

    @classmethod
    def from_env(cls, var: str = DEFAULT_ENV_VAR) -> Keyring:
        """Read the keys from the environment variable ``var``."""
        value = os.environ.get(var)
        if value is None or not value.strip():
            raise KeyringError(
                f"{var} is not set: set it to the app's keys (the value the running app uses; "
                "a new key cannot read an existing store)"
            )
        return cls.from_string(value)

    @classmethod
    def generate(cls, kid: str | None = None) -> Keyring:
        """A keyring with one fresh random 256-bit key (for tests and ``agegate demo``)."""
        return cls([(kid if kid is not None else "k" + secrets.token_hex(4), secrets.token_bytes(32))])

    def to_string(self) -> str:
        """The ``AGEGATE_SECRET_KEYS`` form of this keyring. Handle it as the secret it is."""
        return ",".join(f"{kid}:{base64.b64encode(secret).decode()}" for kid, secret in self._secrets.items())

    @property
    def active_kid(self) -> str:
        """The id of the key that signs and seals."""
        return next(iter(self._secrets))

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, active first."""
        return tuple(self._secrets)

    def purpose_key(self, purpose: Purpose, kid: str | None = None) -> bytes:
        """The 32-byte key for ``purpose`` derived from key ``kid`` (default: the active key)."""
        try:
            return self._derived[(kid or self.active_kid, purpose)]
        except KeyError:
            raise KeyringError("unknown key id or purpose") from None

    def __repr__(self) -> str:
        return f"Keyring(kids={list(self._secrets)!r})"
