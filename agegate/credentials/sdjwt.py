"""Verifying an SD-JWT VC presentation (IETF SD-JWT, SD-JWT VC) that discloses ``age_over_NN``
and nothing else.

``<issuer-signed JWT>~<disclosure>~<key-binding JWT>``: the issuer's JWT is checked against the
trust list (its ``x5c`` chain), its validity period, and that it holds nothing in plain view but
the registered claims; the one disclosure must hash (SHA-256, per the SD-JWT spec) to a digest the
issuer signed; the key-binding JWT must be signed by the holder key the issuer bound (``cnf``)
and carry this request's nonce, the site's origin as audience, and the hash of what it presents.
Signatures are checked by joserfc.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwk, jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from ..errors import CredentialRefused
from .claims import Presentation, age_over
from .trust import IssuerKey, TrustList

__all__ = ["ALGORITHMS", "verify_sd_jwt"]

#: The signature algorithms accepted from issuers and wallets (asymmetric only).
ALGORITHMS = ("ES256", "ES384", "ES512", "Ed25519")
#: Longest presentation accepted, in characters.
MAX_PRESENTATION = 16 * 1024
#: Claims an issuer may put in plain view: who, when, what type, the holder's key, the status
#: list and the digests. Any other claim in plain view would be disclosed with the age.
_REGISTERED = frozenset(
    {"iss", "iat", "nbf", "exp", "vct", "vct#integrity", "cnf", "status", "_sd", "_sd_alg"}
)
#: How old a key-binding JWT may be, and how far in the future (clock skew), in seconds.
KB_MAX_AGE = 300
CLOCK_SKEW = 60
#: joserfc's checks with the algorithms above; a header may carry a certificate chain (``x5c``),
#: so it may be longer than joserfc's default bound of 512 bytes.
_REGISTRY = JWSRegistry(algorithms=ALGORITHMS, strict_check_header=False)
_REGISTRY.max_header_length = 8 * 1024


def _refused(code: str, message: str) -> CredentialRefused:
    return CredentialRefused(code, message)


def _malformed() -> CredentialRefused:
    return _refused("malformed", "This digital ID's answer could not be read.")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not text.isascii() or "=" in text:
        raise _malformed()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _malformed() from None


def _jose_key(key: IssuerKey) -> jwk.Key:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return jwk.import_key(pem, "EC" if isinstance(key, ec.EllipticCurvePublicKey) else "OKP")


def _verified(token: str, key: jwk.Key, typ: Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and JSON payload of compact JWS ``token`` once its signature checks out."""
    try:
        signed = jws.deserialize_compact(token, key, registry=_REGISTRY)
        payload = json.loads(signed.payload)
    except (JoseError, ValueError, TypeError):
        raise _refused("bad_signature", "This digital ID's signature is not valid.") from None
    header = dict(signed.headers())
    if header.get("typ") not in typ or not isinstance(payload, dict):
        raise _malformed()
    return header, payload


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(token.encode("ascii"), registry=_REGISTRY).headers())
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise _malformed() from None


def _chain(header: dict[str, Any]) -> list[bytes]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not all(isinstance(item, str) for item in x5c):
        raise _refused("untrusted_issuer", "This digital ID names no issuer certificate.")
    try:
        return [base64.b64decode(item, validate=True) for item in x5c]
    except (binascii.Error, ValueError):
        raise _malformed() from None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _times_ok(claims: dict[str, Any], now: int) -> bool:
    """Whether the issuer's JWT is valid at ``now``: an expiry is required (a credential that
    never expires is not accepted), ``nbf`` and ``iat`` may not lie in the future."""
    exp = claims.get("exp")
    if not _is_int(exp) or now >= exp:
        return False
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not _is_int(value):
            raise _malformed()
        if value > now + CLOCK_SKEW:
            return False
    return True


def verify_sd_jwt(
    presentation: str,
    *,
    trust: TrustList,
    vct_values: Sequence[str],
    nonce: str,
    audience: str,
    now: datetime,
) -> Presentation:
    """The age claim of SD-JWT VC ``presentation`` once every check passes; raises
    :class:`~agegate.CredentialRefused` otherwise. ``audience`` is ``origin:`` plus the site's
    origin (OpenID4VP over the Digital Credentials API)."""
    if not isinstance(presentation, str) or len(presentation) > MAX_PRESENTATION:
        raise _malformed()
    parts = presentation.split("~")
    if len(parts) < 2:
        raise _malformed()
    issuer_jwt, disclosures, kb_jwt = parts[0], parts[1:-1], parts[-1]
    if not kb_jwt:
        raise _refused("device_binding", "This digital ID's answer is not bound to your device.")
    unix = int(now.timestamp())

    # The issuer: a chain to a trust anchor, its signature, its validity, its type.
    key = trust.issuer_key(_chain(_header(issuer_jwt)), now)
    _, claims = _verified(issuer_jwt, _jose_key(key), ("dc+sd-jwt", "vc+sd-jwt"))
    if not _times_ok(claims, unix):
        raise _refused("expired", "This digital ID has expired or is not valid yet.")
    if claims.get("vct") not in vct_values:
        raise _refused("untrusted_issuer", "This kind of digital ID is not accepted here.")
    if claims.get("_sd_alg", "sha-256") != "sha-256":
        raise _malformed()
    extra = set(claims) - _REGISTERED
    if extra:
        raise _refused("extra_claims", "This digital ID disclosed more than whether you are old enough.")

    # The disclosure: exactly one, signed for by the issuer, and it is the age claim.
    if len(disclosures) != 1:
        code = "no_age_claim" if not disclosures else "extra_claims"
        raise _refused(code, "This digital ID must disclose whether you are old enough, and nothing else.")
    digests = claims.get("_sd")
    disclosure = disclosures[0]
    digest = _b64url(hashlib.sha256(disclosure.encode("ascii", "replace")).digest())
    if not isinstance(digests, list) or digest not in digests:
        raise _refused("bad_signature", "This digital ID's disclosure was not signed by its issuer.")
    try:
        salt, name, value = json.loads(_b64url_decode(disclosure))
    except (ValueError, TypeError):
        raise _malformed() from None
    nn = age_over(name)
    if not isinstance(salt, str) or nn is None or not isinstance(value, bool):
        raise _refused("extra_claims", "This digital ID disclosed more than whether you are old enough.")

    # The holder: the key-binding JWT, by the key the issuer bound, for this request.
    cnf = claims.get("cnf")
    holder = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(holder, dict) or holder.get("kty") not in ("EC", "OKP") or "d" in holder:
        raise _refused("device_binding", "This digital ID is not bound to a device key.")
    try:
        holder_key = jwk.import_key(holder)
    except (JoseError, ValueError, TypeError):
        raise _malformed() from None
    _, binding = _verified(kb_jwt, holder_key, ("kb+jwt",))
    iat = binding.get("iat")
    if not _is_int(iat) or not unix - KB_MAX_AGE <= iat <= unix + CLOCK_SKEW:
        raise _refused("expired", "This digital ID's answer is too old; please try again.")
    sent_nonce = binding.get("nonce")
    if not isinstance(sent_nonce, str) or not hmac.compare_digest(sent_nonce.encode(), nonce.encode()):
        raise _refused("wrong_nonce", "This digital ID's answer was made for another request.")
    if binding.get("aud") != audience:
        raise _refused("wrong_nonce", "This digital ID's answer was made for another site.")
    presented = presentation[: len(presentation) - len(kb_jwt)]
    sd_hash = _b64url(hashlib.sha256(presented.encode("ascii", "replace")).digest())
    if not isinstance(binding.get("sd_hash"), str) or not hmac.compare_digest(binding["sd_hash"], sd_hash):
        raise _refused("device_binding", "This digital ID's answer was changed after the device signed it.")
    return Presentation("dc+sd-jwt", nn, value)
