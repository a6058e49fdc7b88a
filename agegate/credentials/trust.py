"""The issuers an app trusts: X.509 trust anchors (an mdoc's IACA roots, an SD-JWT VC issuer's
root), and the check that a credential's certificate chain ends at one of them.

Every signature is checked by pyca/cryptography (``verify_directly_issued_by``); this module only
decides which certificate must have signed which, and when each is valid.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import ConfigurationError, CredentialRefused

__all__ = ["IssuerKey", "TrustList"]

IssuerKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
#: Longest certificate chain a credential may carry (document signer, intermediates, root).
MAX_CHAIN = 4


def _untrusted() -> CredentialRefused:
    return CredentialRefused(
        "untrusted_issuer", "This digital ID was not issued by an issuer this site trusts."
    )


class TrustList:
    """The trust anchors (root certificates) of the issuers an app accepts.

    ``TrustList([root_cert, ...])`` takes :class:`cryptography.x509.Certificate` objects, or
    PEM/DER bytes (:meth:`from_pem` reads a bundle). A credential is trusted when its chain (the
    certificate that signed it first) leads, each certificate signed by the next, to one of the
    anchors, and every certificate of the chain is valid at the time of the check.
    """

    def __init__(self, anchors: Iterable[x509.Certificate | bytes]) -> None:
        if isinstance(anchors, str | bytes):
            raise ConfigurationError("TrustList takes a list of root certificates")
        roots: list[x509.Certificate] = []
        for anchor in anchors:
            if isinstance(anchor, bytes):
                anchor = _load(anchor)
            if not isinstance(anchor, x509.Certificate):
                raise ConfigurationError("TrustList takes x509 certificates, or their PEM or DER bytes")
            roots.append(anchor)
        if not roots:
            raise ConfigurationError(
                "TrustList needs at least one root certificate: an empty list trusts nobody"
            )
        self._roots = tuple(roots)
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for root in roots:
            self._by_subject.setdefault(root.subject.public_bytes(), []).append(root)

    @classmethod
    def from_pem(cls, data: bytes) -> TrustList:
        """A trust list from a PEM bundle of root certificates."""
        try:
            return cls(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise ConfigurationError("the trust list is not a PEM bundle of certificates") from None

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        """The root certificates."""
        return self._roots

    def issuer_key(self, chain: Sequence[bytes], now: datetime) -> IssuerKey:
        """The public key of the certificate that signed a credential, once ``chain`` (DER
        certificates, the signer's first) is checked to end at a trust anchor at time ``now``.
        Raises :class:`~agegate.CredentialRefused` (``untrusted_issuer``) otherwise."""
        if not chain or len(chain) > MAX_CHAIN:
            raise _untrusted()
        try:
            return self._checked_key([x509.load_der_x509_certificate(der) for der in chain], now)
        except CredentialRefused:
            raise
        except (ValueError, TypeError, x509.InvalidVersion):
            # The library parses a certificate's fields when first read: a damaged one can
            # fail on any of them.
            raise _untrusted() from None

    def _checked_key(self, certs: list[x509.Certificate], now: datetime) -> IssuerKey:
        # A chain may or may not include its root: find the anchor that signed its last member
        # (or that is its last member), and check every link on the way with the library.
        last = certs[-1]
        links = certs if any(root == last for root in self._roots) else [*certs, self._signer_of(last)]
        for cert in links:
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                raise CredentialRefused("expired", "This digital ID's issuer certificate is not valid now.")
        for child, parent in itertools.pairwise(links):
            if not _is_ca(parent):
                raise _untrusted()
            try:
                child.verify_directly_issued_by(parent)
            except (InvalidSignature, ValueError, TypeError):
                raise _untrusted() from None
        key = links[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise _untrusted()
        return key

    def _signer_of(self, cert: x509.Certificate) -> x509.Certificate:
        for root in self._by_subject.get(cert.issuer.public_bytes(), ()):
            try:
                cert.verify_directly_issued_by(root)
            except (InvalidSignature, ValueError, TypeError):
                continue
            return root
        raise _untrusted()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _load(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ConfigurationError("a trust anchor is not a PEM or DER certificate") from None
