"""Issuers, wallets and presentations made in the tests: a test root CA and document signer, an
SD-JWT VC and an ISO 18013-5 mdoc signed by it, and device-signed presentations of them.

Everything is signed with the field's libraries (cryptography for certificates, joserfc for JWS,
pycose for COSE_Sign1), so the verifier is checked against independently built objects."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwk, jws
from pycose.algorithms import Es256
from pycose.headers import Algorithm, X5chain
from pycose.keys.cosekey import CoseKey
from pycose.messages.sign1message import Sign1Message

from agegate.credentials.mdoc import NAMESPACE, session_transcript

VCT = "https://issuer.example/age"
DOCTYPE = "org.iso.18013.5.1.mDL"
ORIGIN = "https://shop.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(signing_key, hashes.SHA256())


@dataclass
class Issuer:
    """A root CA (the trust anchor) and a document signer it certified."""

    name: str = "Test Issuer"
    signer_valid_until: datetime | None = None
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    signer_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        self.root = _cert(
            f"{self.name} Root",
            self.root_key,
            None,
            ca=True,
            not_before=now - timedelta(days=10),
            not_after=now + timedelta(days=3650),
        )
        self.signer = _cert(
            f"{self.name} Signer",
            self.signer_key,
            (self.root, self.root_key),
            ca=False,
            not_before=now - timedelta(days=5),
            not_after=self.signer_valid_until or now + timedelta(days=365),
        )

    @property
    def chain(self) -> list[bytes]:
        return [self.signer.public_bytes(serialization.Encoding.DER)]


@dataclass
class Wallet:
    """A holder's device key."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return dict(jwk.import_key(public, "EC").as_dict())

    @property
    def cose_key(self) -> CoseKey:
        return CoseKey.from_pem_private_key(_pem(self.key).decode())

    @property
    def cose_public(self) -> dict[int, Any]:
        numbers = self.key.public_key().public_numbers()
        return {1: 2, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}


# -- SD-JWT VC ---------------------------------------------------------------------------------


def disclosure(name: str, value: Any) -> str:
    return b64url(json.dumps([b64url(os.urandom(16)), name, value]).encode())


def sd_jwt_credential(
    issuer: Issuer,
    wallet: Wallet | None,
    *,
    claims: dict[str, Any] | None = None,
    plain: dict[str, Any] | None = None,
    expires: datetime | None = None,
    vct: str = VCT,
) -> tuple[str, list[str]]:
    """An issuer-signed SD-JWT VC with one disclosure per claim in ``claims``."""
    now = datetime.now(UTC)
    disclosures = [disclosure(name, value) for name, value in (claims or {"age_over_13": True}).items()]
    payload: dict[str, Any] = {
        "iss": "https://issuer.example",
        "iat": int(now.timestamp()) - 60,
        "exp": int((expires or now + timedelta(days=30)).timestamp()),
        "vct": vct,
        "_sd_alg": "sha-256",
        "_sd": sorted(b64url(hashlib.sha256(d.encode()).digest()) for d in disclosures),
        **(plain or {}),
    }
    if wallet is not None:
        payload["cnf"] = {"jwk": wallet.jwk}
    header = {
        "alg": "ES256",
        "typ": "dc+sd-jwt",
        "x5c": [base64.b64encode(der).decode() for der in issuer.chain],
    }
    key = jwk.import_key(_pem(issuer.signer_key), "EC")
    return jws.serialize_compact(header, json.dumps(payload).encode(), key), disclosures


def sd_jwt_presentation(
    issuer_jwt: str,
    disclosures: list[str],
    wallet: Wallet | None,
    *,
    nonce: str,
    audience: str = f"origin:{ORIGIN}",
    iat: int | None = None,
) -> str:
    """``<issuer JWT>~<disclosures>~<KB-JWT>`` (no KB-JWT when ``wallet`` is None)."""
    presented = "~".join([issuer_jwt, *disclosures]) + "~"
    if wallet is None:
        return presented
    payload = {
        "iat": iat if iat is not None else int(datetime.now(UTC).timestamp()),
        "aud": audience,
        "nonce": nonce,
        "sd_hash": b64url(hashlib.sha256(presented.encode()).digest()),
    }
    key = jwk.import_key(_pem(wallet.key), "EC")
    return presented + jws.serialize_compact(
        {"alg": "ES256", "typ": "kb+jwt"}, json.dumps(payload).encode(), key
    )


# -- mdoc --------------------------------------------------------------------------------------


def mdoc_presentation(
    issuer: Issuer,
    wallet: Wallet,
    *,
    nonce: str,
    origin: str = ORIGIN,
    elements: dict[str, dict[str, Any]] | None = None,
    valid_until: datetime | None = None,
    device_signature: bool = True,
    device_namespaces: dict[str, Any] | None = None,
    doctype: str = DOCTYPE,
    signed_nonce: str | None = None,
    device: Wallet | None = None,
) -> str:
    """A base64url DeviceResponse disclosing ``elements`` (namespace -> element -> value),
    its MSO signed by ``issuer``, device-signed by ``wallet`` (or another ``device``) for
    ``nonce`` and ``origin``."""
    now = datetime.now(UTC).replace(microsecond=0)
    elements = elements or {NAMESPACE: {"age_over_13": True}}
    items: dict[str, list[cbor2.CBORTag]] = {}
    digests: dict[str, dict[int, bytes]] = {}
    digest_id = 0
    for namespace, values in elements.items():
        for name, value in values.items():
            item = {
                "digestID": digest_id,
                "random": os.urandom(16),
                "elementIdentifier": name,
                "elementValue": value,
            }
            wrapped = cbor2.CBORTag(24, cbor2.dumps(item))
            items.setdefault(namespace, []).append(wrapped)
            digests.setdefault(namespace, {})[digest_id] = hashlib.sha256(cbor2.dumps(wrapped)).digest()
            digest_id += 1
    mso = {
        "version": "1.0",
        "digestAlgorithm": "SHA-256",
        "valueDigests": digests,
        "deviceKeyInfo": {"deviceKey": wallet.cose_public},
        "docType": doctype,
        "validityInfo": {
            "signed": now,
            "validFrom": now - timedelta(days=1),
            "validUntil": valid_until or now + timedelta(days=30),
        },
    }
    signer = CoseKey.from_pem_private_key(_pem(issuer.signer_key).decode())
    auth = Sign1Message(
        phdr={Algorithm: Es256},
        uhdr={X5chain: issuer.chain[0]},
        payload=cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(mso))),
        key=signer,
    )
    issuer_auth = cbor2.loads(auth.encode(tag=False))
    device_ns = cbor2.CBORTag(24, cbor2.dumps(device_namespaces or {}))
    device_auth: dict[str, Any] = {}
    if device_signature:
        transcript = session_transcript(origin, signed_nonce or nonce)
        authentication = ["DeviceAuthentication", transcript, doctype, device_ns]
        signed = cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(authentication)))
        message = Sign1Message(phdr={Algorithm: Es256}, payload=None, key=(device or wallet).cose_key)
        device_auth["deviceSignature"] = cbor2.loads(message.encode(tag=False, detached_payload=signed))
    document = {
        "docType": doctype,
        "issuerSigned": {"nameSpaces": items, "issuerAuth": issuer_auth},
        "deviceSigned": {"nameSpaces": device_ns, "deviceAuth": device_auth},
    }
    return b64url(cbor2.dumps({"version": "1.0", "documents": [document], "status": 0}))
