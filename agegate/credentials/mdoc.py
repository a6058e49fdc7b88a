"""Verifying an ISO 18013-5 mdoc presentation (a ``DeviceResponse``) that discloses
``org.iso.18013.5.1`` / ``age_over_NN`` and nothing else, as OpenID4VP returns it over the
Digital Credentials API.

The issuer's ``issuerAuth`` (COSE_Sign1 over the Mobile Security Object) is checked against the
trust list (its ``x5chain``) and the MSO's validity period; the one disclosed element must hash
to the digest the issuer signed; ``deviceSignature`` (COSE_Sign1 over the
``DeviceAuthentication`` bytes) must be made by the device key the MSO names, over the session
transcript of this request (origin and nonce, OpenID4VP Appendix B). CBOR by cbor2, COSE
signatures by pycose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from pycose.exceptions import CoseException
from pycose.headers import Algorithm, X5chain
from pycose.keys.cosekey import CoseKey
from pycose.messages.sign1message import Sign1Message

from ..errors import CredentialRefused
from .claims import Presentation, age_over
from .trust import TrustList

__all__ = ["NAMESPACE", "session_transcript", "verify_mdoc"]

#: The ISO 18013-5 namespace of ``age_over_NN``.
NAMESPACE = "org.iso.18013.5.1"
#: Longest presentation accepted, in base64url characters.
MAX_PRESENTATION = 32 * 1024
_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA"})
_DIGESTS = {"SHA-256": hashlib.sha256, "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}
_CBOR_ERRORS = (cbor2.CBORDecodeError, ValueError, TypeError, LookupError, RecursionError)


def _malformed() -> CredentialRefused:
    return CredentialRefused("malformed", "This digital ID's answer could not be read.")


def _extra() -> CredentialRefused:
    return CredentialRefused(
        "extra_claims", "This digital ID disclosed more than whether you are old enough."
    )


def _no_binding() -> CredentialRefused:
    return CredentialRefused(
        "device_binding", "This digital ID's answer was not signed by its device for this request."
    )


def _loads(data: bytes) -> Any:
    """One CBOR data item filling all of ``data``: trailing bytes are refused, not ignored."""
    stream = io.BytesIO(data)
    value = cbor2.CBORDecoder(stream).decode()
    if stream.tell() != len(data):
        raise _malformed()  # a ValueError too: refused like any unreadable CBOR
    return value


def session_transcript(origin: str, nonce: str) -> list[Any]:
    """The ISO 18013-5 ``SessionTranscript`` of an OpenID4VP request over the Digital
    Credentials API (unencrypted response): ``[null, null, OpenID4VPDCAPIHandover]``."""
    info = cbor2.dumps([origin, nonce, None])
    return [None, None, ["OpenID4VPDCAPIHandover", hashlib.sha256(info).digest()]]


def _embedded(value: Any) -> Any:
    """The CBOR data inside a tag-24 ``bstr .cbor`` wrapper."""
    if not isinstance(value, cbor2.CBORTag) or value.tag != 24 or not isinstance(value.value, bytes):
        raise _malformed()
    try:
        return _loads(value.value)
    except _CBOR_ERRORS:
        raise _malformed() from None


def _sign1(value: Any) -> Sign1Message:
    if isinstance(value, cbor2.CBORTag) and value.tag == 18:
        value = value.value
    if not isinstance(value, list) or len(value) != 4 or not isinstance(value[0], bytes):
        raise _malformed()
    try:
        message = Sign1Message.from_cose_obj(list(value), allow_unknown_attributes=True)
        alg = message.get_attr(Algorithm)
    except (CoseException, *_CBOR_ERRORS):
        raise _malformed() from None
    if getattr(alg, "fullname", None) not in _ALGORITHMS or Algorithm not in message.phdr:
        raise _malformed()
    return message


def _check(message: Sign1Message, key: CoseKey, detached: bytes | None, refusal: CredentialRefused) -> None:
    message.key = key
    try:
        good = message.verify_signature(detached_payload=detached)
    except (CoseException, *_CBOR_ERRORS):
        good = False
    if not good:
        raise refusal


def _at(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _malformed()
    return value


def verify_mdoc(
    presentation: str,
    *,
    trust: TrustList,
    doctypes: Sequence[str],
    nonce: str,
    origin: str,
    now: datetime,
) -> Presentation:
    """The age claim of base64url ``DeviceResponse`` ``presentation`` once every check
    passes; raises :class:`~agegate.CredentialRefused` otherwise."""
    if not isinstance(presentation, str) or len(presentation) > MAX_PRESENTATION or "=" in presentation:
        raise _malformed()
    try:
        raw = base64.urlsafe_b64decode(presentation + "=" * (-len(presentation) % 4))
        response = _loads(raw)
        documents = response["documents"]
        (document,) = documents
        doctype = document["docType"]
        issuer_signed = document["issuerSigned"]
        issuer_auth = issuer_signed["issuerAuth"]
        namespaces = issuer_signed["nameSpaces"]
    except (binascii.Error, *_CBOR_ERRORS):
        raise _malformed() from None
    if response.get("version") != "1.0" or response.get("status") != 0 or not isinstance(namespaces, dict):
        raise _malformed()
    if doctype not in doctypes:
        raise CredentialRefused("untrusted_issuer", "This kind of digital ID is not accepted here.")

    # The issuer: its chain, its signature over the MSO, the MSO's validity.
    auth = _sign1(issuer_auth)
    chain = auth.uhdr.get(X5chain, auth.phdr.get(X5chain))
    chain = [chain] if isinstance(chain, bytes) else chain
    if not isinstance(chain, list) or not all(isinstance(der, bytes) for der in chain):
        raise CredentialRefused("untrusted_issuer", "This digital ID names no issuer certificate.")
    issuer_key = trust.issuer_key(chain, now)
    pem = issuer_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    bad_issuer = CredentialRefused("bad_signature", "This digital ID's signature is not valid.")
    _check(auth, CoseKey.from_pem_public_key(pem.decode()), None, bad_issuer)
    try:
        mso = _embedded(_loads(auth.payload or b""))
        validity = mso["validityInfo"]
        valid_from, valid_until = _at(validity["validFrom"]), _at(validity["validUntil"])
        digest_of = _DIGESTS[mso["digestAlgorithm"]]
        signed_digests = mso["valueDigests"]
        device_key: CoseKey = CoseKey.from_dict(mso["deviceKeyInfo"]["deviceKey"])
    except (CoseException, *_CBOR_ERRORS):
        raise _malformed() from None
    if mso.get("docType") != doctype:
        raise _malformed()
    if not valid_from <= now < valid_until:
        raise CredentialRefused("expired", "This digital ID has expired or is not valid yet.")

    # The disclosure: one element of one namespace, signed for by the issuer, the age claim.
    if set(namespaces) != {NAMESPACE}:
        raise _extra()
    items = namespaces[NAMESPACE]
    if not isinstance(items, list) or len(items) != 1:
        raise _extra() if isinstance(items, list) and items else _malformed()
    item = _embedded(items[0])
    try:
        expected = signed_digests[NAMESPACE][item["digestID"]]
        name, value = item["elementIdentifier"], item["elementValue"]
    except (*_CBOR_ERRORS,):
        raise CredentialRefused(
            "bad_signature", "This digital ID's disclosure was not signed by its issuer."
        ) from None
    digest = digest_of(cbor2.dumps(items[0])).digest()
    if not isinstance(expected, bytes) or not hmac.compare_digest(digest, expected):
        raise CredentialRefused("bad_signature", "This digital ID's disclosure was not signed by its issuer.")
    nn = age_over(name)
    if nn is None or not isinstance(value, bool):
        raise _extra()

    # The device: its signature over this request's session transcript, disclosing nothing.
    device_signed = document.get("deviceSigned")
    if not isinstance(device_signed, dict) or not isinstance(device_signed.get("deviceAuth"), dict):
        raise _no_binding()
    device_namespaces = device_signed.get("nameSpaces")
    if _embedded(device_namespaces) != {}:
        raise _extra()
    signature = device_signed["deviceAuth"].get("deviceSignature")
    if signature is None:
        raise _no_binding()  # deviceMac (a key agreed with the reader) is not supported
    device_auth = _sign1(signature)
    if device_auth.payload is not None:
        raise _malformed()
    authentication = ["DeviceAuthentication", session_transcript(origin, nonce), doctype, device_namespaces]
    signed_bytes = cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(authentication)))
    _check(device_auth, device_key, signed_bytes, _no_binding())
    return Presentation("mso_mdoc", nn, value)
