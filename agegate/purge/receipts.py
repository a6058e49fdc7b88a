"""Deletion receipts: a short JSON document about a finished purge, signed with Ed25519.

The signing key is derived from the keyring (the ``receipt`` purpose key is the Ed25519 private
key's 32 bytes), so every instance of an app signs alike and nothing extra must be kept secret.
A receipt names the job, the ticket, the time, each handler with its count and the policy; it
never holds the account id, an email, a phone number or any other identifier.

File layout (UTF-8 JSON)::

    {"receipt": {...payload...}, "signature": "<base64 Ed25519 signature>"}

The signature covers the payload serialised canonically: exactly the UTF-8 bytes of
``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. A file in
which any object repeats a key is refused, so what a reader sees is what was verified.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import InvalidReceipt, _DuplicateKey
from ..keys import Keyring

__all__ = [
    "RECEIPT_TYPE",
    "RECEIPT_VERSION",
    "InvalidReceipt",
    "make_receipt",
    "parse_public_key",
    "public_key_text",
    "signing_key",
    "verify_receipt",
]

RECEIPT_TYPE = "agegate.deletion-receipt"
RECEIPT_VERSION = 1
_MAX_RECEIPT_BYTES = 64 * 1024


def signing_key(keys: Keyring, kid: str | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key that signs receipts, derived from key ``kid`` (default: active)."""
    return Ed25519PrivateKey.from_private_bytes(keys.purpose_key("receipt", kid))


def public_key_text(keys: Keyring, kid: str | None = None) -> str:
    """The receipt-verifying public key for key ``kid`` (default: active), as base64."""
    raw = signing_key(keys, kid).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Read a public key printed by ``agegate keys public`` (``base64`` or ``kid:base64``)."""
    encoded = text.strip().rpartition(":")[2]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise InvalidReceipt(
            "the public key is not a base64 Ed25519 key (see `agegate keys public`)"
        ) from None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a reader that keeps the first would show
    # something other than what was verified. A receipt never repeats a key.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey
        out[key] = value
    return out


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_receipt(
    keys: Keyring,
    *,
    job_id: str,
    ticket: str,
    completed_at: datetime,
    deleted: Mapping[str, int],
    policy: str,
    identifiers_blocked: int = 0,
    kid: str | None = None,
) -> str:
    """The signed receipt for a finished purge, as JSON text ready to write to a file, signed
    with key ``kid`` (default: the active key).

    Signing is deterministic (Ed25519), so issuing the receipt of a job twice gives the same text.
    """
    kid = kid or keys.active_kid
    payload: dict[str, Any] = {
        "type": RECEIPT_TYPE,
        "version": RECEIPT_VERSION,
        "job_id": job_id,
        "ticket": ticket,
        "completed_at": completed_at.astimezone(UTC).isoformat(timespec="seconds"),
        "handlers": [{"name": name, "deleted": count} for name, count in deleted.items()],
        "identifiers_blocked": identifiers_blocked,
        "policy": policy,
        "kid": kid,
        "public_key": public_key_text(keys, kid),
    }
    signature = signing_key(keys, kid).sign(_canonical(payload))
    document = {"receipt": payload, "signature": base64.b64encode(signature).decode("ascii")}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def verify_receipt(text: str | bytes, public_key: Ed25519PublicKey | Keyring) -> dict[str, Any]:
    """Check a receipt's signature; returns its payload or raises :class:`InvalidReceipt`.

    ``public_key`` is the key from ``agegate keys public``, or a :class:`~agegate.Keyring` (the
    key named by the receipt's ``kid`` is then used). The ``public_key`` field inside the receipt
    is only a hint for people: it is never trusted.
    """
    if len(text) > _MAX_RECEIPT_BYTES:
        raise InvalidReceipt("this file is too large to be an agegate receipt")
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey:
        raise InvalidReceipt("this file is not an agegate receipt (a key appears twice)") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidReceipt("this file is not an agegate receipt (not JSON)") from None
    except RecursionError:
        raise InvalidReceipt("this file is not an agegate receipt (nested too deeply)") from None
    if not isinstance(document, dict):
        raise InvalidReceipt("this file is not an agegate receipt")
    payload, signature = document.get("receipt"), document.get("signature")
    if not isinstance(payload, dict) or not isinstance(signature, str):
        raise InvalidReceipt("this file is not an agegate receipt (no receipt or signature)")
    if payload.get("type") != RECEIPT_TYPE or payload.get("version") != RECEIPT_VERSION:
        raise InvalidReceipt("this file is not an agegate receipt of a known version")
    if isinstance(public_key, Keyring):
        kid = payload.get("kid")
        if not isinstance(kid, str) or kid not in public_key.kids:
            raise InvalidReceipt("the receipt was signed with a key that is not in AGEGATE_SECRET_KEYS")
        public_key = signing_key(public_key, kid).public_key()
    try:
        public_key.verify(base64.b64decode(signature, validate=True), _canonical(payload))
    except (InvalidSignature, binascii.Error, ValueError):
        raise InvalidReceipt(
            "the receipt's signature does not verify: it was altered or signed by another key"
        ) from None
    return payload
