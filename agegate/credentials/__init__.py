"""Digital IDs: a verified ``age_over_NN`` from a wallet, through the W3C Digital Credentials API
and OpenID4VP, as an ISO 18013-5 mdoc or an SD-JWT VC. Needs the extra ``agegate[credentials]``
(cbor2, pycose, joserfc)."""

from ..errors import CredentialRefused
from .claims import Presentation, age_claim_name, outcome_of
from .nonces import NonceBook
from .trust import TrustList
from .verifier import PROTOCOL, CredentialVerifier

__all__ = [
    "PROTOCOL",
    "CredentialRefused",
    "CredentialVerifier",
    "NonceBook",
    "Presentation",
    "TrustList",
    "age_claim_name",
    "outcome_of",
]
