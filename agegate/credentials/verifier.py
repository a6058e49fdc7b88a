"""CredentialVerifier: the OpenID4VP request a screen sends through the Digital Credentials API,
and the check of the wallet's answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigurationError, CredentialRefused
from .claims import Presentation, age_claim_name
from .mdoc import NAMESPACE, verify_mdoc
from .sdjwt import ALGORITHMS, verify_sd_jwt
from .trust import TrustList

__all__ = ["PROTOCOL", "CredentialVerifier"]

#: The Digital Credentials API protocol of the request (OpenID4VP 1.0, unsigned request).
PROTOCOL = "openid4vp-v1-unsigned"
_MDOC_QUERY = "age_mdoc"
_SD_JWT_QUERY = "age_sd_jwt"
_MDOC_ALGS = [-7, -35, -36, -8]  # ES256, ES384, ES512, EdDSA (COSE algorithm ids)


def _texts(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str | bytes):
        raise ConfigurationError(f"{name} takes a list of strings")
    items = tuple(values)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigurationError(f"{name} takes a list of non-empty strings")
    return items


class CredentialVerifier:
    """Verifies digital-ID presentations of ``age_over_NN`` for an app.

    ``trust`` is the :class:`TrustList` of issuers the app accepts. ``doctypes`` are the mdoc
    document types asked for (default: the mobile driving licence, ``org.iso.18013.5.1.mDL``;
    ``()`` asks for no mdoc); ``vct_values`` the SD-JWT VC types (default none: name the types
    your issuers use to accept SD-JWT VCs). Give it to the middleware as
    ``AgeGateMiddleware(..., credentials=verifier)``.
    """

    def __init__(
        self,
        trust: TrustList,
        *,
        doctypes: Iterable[str] = ("org.iso.18013.5.1.mDL",),
        vct_values: Iterable[str] = (),
    ) -> None:
        if not isinstance(trust, TrustList):
            raise ConfigurationError("trust must be an agegate.credentials.TrustList")
        self.trust = trust
        self.doctypes = _texts("doctypes", doctypes)
        self.vct_values = _texts("vct_values", vct_values)
        if not self.doctypes and not self.vct_values:
            raise ConfigurationError("a CredentialVerifier needs doctypes (mdoc) or vct_values (SD-JWT VC)")

    def request(self, nonce: str, min_age: int) -> dict[str, Any]:
        """The Digital Credentials API request (``{"protocol", "data"}``) for the one claim
        ``age_over_<min_age>``, with ``nonce``: a DCQL query offering each accepted format."""
        claim = age_claim_name(min_age)
        credentials: list[dict[str, Any]] = []
        for index, doctype in enumerate(self.doctypes):
            credentials.append(
                {
                    "id": _MDOC_QUERY if index == 0 else f"{_MDOC_QUERY}_{index}",
                    "format": "mso_mdoc",
                    "meta": {"doctype_value": doctype},
                    "claims": [{"path": [NAMESPACE, claim], "intent_to_retain": False}],
                }
            )
        if self.vct_values:
            credentials.append(
                {
                    "id": _SD_JWT_QUERY,
                    "format": "dc+sd-jwt",
                    "meta": {"vct_values": list(self.vct_values)},
                    "claims": [{"path": [claim]}],
                }
            )
        query: dict[str, Any] = {"credentials": credentials}
        if len(credentials) > 1:
            query["credential_sets"] = [{"options": [[item["id"]] for item in credentials]}]
        return {
            "protocol": PROTOCOL,
            "data": {
                "response_type": "vp_token",
                "response_mode": "dc_api",
                "nonce": nonce,
                "dcql_query": query,
                "client_metadata": {
                    "vp_formats_supported": {
                        "mso_mdoc": {
                            "issuerauth_alg_values": _MDOC_ALGS,
                            "deviceauth_alg_values": _MDOC_ALGS,
                        },
                        "dc+sd-jwt": {
                            "sd-jwt_alg_values": list(ALGORITHMS),
                            "kb-jwt_alg_values": list(ALGORITHMS),
                        },
                    }
                },
            },
        }

    def verify(
        self, response: Mapping[str, Any], *, nonce: str, origin: str, now: datetime | None = None
    ) -> Presentation:
        """The age claim of the wallet's ``response`` (the ``data`` of the API's answer:
        ``{"vp_token": {query id: [presentation]}}``), for the request carrying ``nonce`` made
        on the page at ``origin``; :class:`~agegate.CredentialRefused` when any check fails."""
        when = now or datetime.now(UTC)
        token = response.get("vp_token") if isinstance(response, Mapping) else None
        if not isinstance(token, Mapping) or len(token) != 1:
            raise CredentialRefused("malformed", "This digital ID's answer could not be read.")
        ((query, presented),) = token.items()
        if isinstance(presented, list):
            if len(presented) != 1:
                raise CredentialRefused("extra_claims", "Please present one digital ID.")
            presented = presented[0]
        if isinstance(query, str) and (query == _MDOC_QUERY or query.startswith(_MDOC_QUERY + "_")):
            return verify_mdoc(
                presented, trust=self.trust, doctypes=self.doctypes, nonce=nonce, origin=origin, now=when
            )
        if query == _SD_JWT_QUERY and self.vct_values:
            return verify_sd_jwt(
                presented,
                trust=self.trust,
                vct_values=self.vct_values,
                nonce=nonce,
                audience=f"origin:{origin}",
                now=when,
            )
        raise CredentialRefused("malformed", "This digital ID's answer could not be read.")
