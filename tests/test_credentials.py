"""The digital-ID verifier against issuers, wallets and presentations made here (tests/wallet.py):
valid SD-JWT VC and mdoc presentations pass; a changed byte, a wrong or reused nonce, an expired
credential, an untrusted issuer, a missing device binding and an extra disclosed claim are each
refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from wallet import (
    ORIGIN,
    VCT,
    Issuer,
    Wallet,
    b64url,
    mdoc_presentation,
    sd_jwt_credential,
    sd_jwt_presentation,
)

from agegate import Keyring
from agegate.credentials import (
    CredentialRefused,
    CredentialVerifier,
    NonceBook,
    Presentation,
    TrustList,
    outcome_of,
)
from agegate.credentials.mdoc import NAMESPACE
from agegate.errors import ConfigurationError

NONCE = b64url(b"n" * 32)


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet()


@pytest.fixture(scope="module")
def verifier(issuer: Issuer) -> CredentialVerifier:
    return CredentialVerifier(TrustList([issuer.root]), vct_values=[VCT])


def sd_jwt(vp: str) -> dict[str, Any]:
    return {"vp_token": {"age_sd_jwt": [vp]}}


def mdoc(vp: str) -> dict[str, Any]:
    return {"vp_token": {"age_mdoc": [vp]}}


def refused(verifier: CredentialVerifier, response: dict[str, Any], nonce: str = NONCE) -> str:
    with pytest.raises(CredentialRefused) as caught:
        verifier.verify(response, nonce=nonce, origin=ORIGIN)
    return caught.value.code


def flip(text: str, index: int) -> str:
    """``text`` with the base64url character at ``index`` changed."""
    char = "A" if text[index] != "A" else "B"
    return text[:index] + char + text[index + 1 :]


# -- SD-JWT VC ---------------------------------------------------------------------------------


def test_a_valid_sd_jwt_presentation_passes(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    vp = sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)
    assert verifier.verify(sd_jwt(vp), nonce=NONCE, origin=ORIGIN) == Presentation("dc+sd-jwt", 13, True)
    # The API's answer may carry one presentation bare, not in a list.
    assert verifier.verify({"vp_token": {"age_sd_jwt": vp}}, nonce=NONCE, origin=ORIGIN).value is True


@pytest.mark.parametrize("part", ["issuer_header", "issuer_payload", "issuer_signature", "disclosure", "kb"])
def test_a_changed_byte_in_an_sd_jwt_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier, part: str
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    vp = sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)
    head, payload, signature = jwt.split(".")
    kb = vp.rsplit("~", 1)[1]
    changed = {
        "issuer_header": vp.replace(head, flip(head, 5)),
        "issuer_payload": vp.replace(payload, flip(payload, 20)),
        "issuer_signature": vp.replace(signature, flip(signature, 10)),
        "disclosure": vp.replace(disclosures[0], flip(disclosures[0], 3)),
        "kb": vp.replace(kb, flip(kb, len(kb) - 5)),
    }[part]
    assert changed != vp
    assert refused(verifier, sd_jwt(changed)) in {"malformed", "bad_signature", "device_binding"}


def test_every_changed_character_of_an_sd_jwt_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    vp = sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)
    for index, char in enumerate(vp):
        refused(verifier, sd_jwt(vp[:index] + ("A" if char != "A" else "B") + vp[index + 1 :]))


def test_an_sd_jwt_for_another_nonce_or_site_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    vp = sd_jwt_presentation(jwt, disclosures, wallet, nonce=b64url(b"x" * 32))
    assert refused(verifier, sd_jwt(vp)) == "wrong_nonce"
    elsewhere = sd_jwt_presentation(
        jwt, disclosures, wallet, nonce=NONCE, audience="origin:https://evil.example"
    )
    assert refused(verifier, sd_jwt(elsewhere)) == "wrong_nonce"


def test_an_expired_sd_jwt_is_refused(issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet, expires=datetime.now(UTC) - timedelta(minutes=1))
    assert refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE))) == "expired"
    # An old key-binding JWT (made long ago for this nonce) is refused too.
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    stale = int(datetime.now(UTC).timestamp()) - 3600
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE, iat=stale)))
        == "expired"
    )


def test_an_sd_jwt_from_an_untrusted_issuer_is_refused(wallet: Wallet, verifier: CredentialVerifier) -> None:
    stranger = Issuer(name="Stranger")
    jwt, disclosures = sd_jwt_credential(stranger, wallet)
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)))
        == "untrusted_issuer"
    )
    # Nor does an issuer certificate that outlived its validity pass.
    lapsed = Issuer(name="Lapsed", signer_valid_until=datetime.now(UTC) - timedelta(days=1))
    lapsed_verifier = CredentialVerifier(TrustList([lapsed.root]), vct_values=[VCT])
    jwt, disclosures = sd_jwt_credential(lapsed, wallet)
    assert (
        refused(lapsed_verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)))
        == "expired"
    )


def test_an_sd_jwt_of_another_type_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet, vct="https://issuer.example/library-card")
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)))
        == "untrusted_issuer"
    )


def test_an_sd_jwt_without_device_binding_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, None, nonce=NONCE)))
        == "device_binding"
    )
    # A key-binding JWT by another key than the one the issuer bound.
    thief = Wallet()
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, thief, nonce=NONCE)))
        == "bad_signature"
    )
    # A credential bound to no key at all.
    unbound, disclosures = sd_jwt_credential(issuer, None)
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(unbound, disclosures, wallet, nonce=NONCE)))
        == "device_binding"
    )


def test_an_sd_jwt_that_discloses_more_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    jwt, disclosures = sd_jwt_credential(issuer, wallet, claims={"age_over_13": True, "given_name": "Ada"})
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)))
        == "extra_claims"
    )
    # Only the name disclosed: not the age claim.
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures[1:], wallet, nonce=NONCE)))
        == "extra_claims"
    )
    # A claim in plain view is disclosed too.
    jwt, disclosures = sd_jwt_credential(issuer, wallet, plain={"birthdate": "2000-01-01"})
    assert (
        refused(verifier, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE)))
        == "extra_claims"
    )
    # Nothing disclosed: no answer.
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    assert refused(verifier, sd_jwt(sd_jwt_presentation(jwt, [], wallet, nonce=NONCE))) == "no_age_claim"


# -- mdoc --------------------------------------------------------------------------------------


def test_a_valid_mdoc_presentation_passes(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE)
    assert verifier.verify(mdoc(vp), nonce=NONCE, origin=ORIGIN) == Presentation("mso_mdoc", 13, True)


def test_a_changed_byte_in_an_mdoc_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE)
    raw = base64.urlsafe_b64decode(vp + "=" * (-len(vp) % 4))
    signer = issuer.chain[0]
    at = raw.index(signer)
    # Every third byte, and every byte of the issuer's certificate and of the device signature.
    every = {*range(0, len(raw), 3), *range(at, at + len(signer)), *range(len(raw) - 100, len(raw))}
    for index in sorted(every):
        changed = raw[:index] + bytes([raw[index] ^ 0x01]) + raw[index + 1 :]
        try:
            verifier.verify(mdoc(b64url(changed)), nonce=NONCE, origin=ORIGIN)
        except CredentialRefused:
            continue
        # The one change that may pass is one the certificate's own DER allows without changing
        # anything signed or signing (the unused-bits count of its signature's BIT STRING when
        # the last bit is zero): the same signed part, the same signature.
        assert at <= index < at + len(signer), index
        mutated = x509.load_der_x509_certificate(changed[at : at + len(signer)])
        original = x509.load_der_x509_certificate(signer)
        assert mutated.tbs_certificate_bytes == original.tbs_certificate_bytes
        assert mutated.signature == original.signature


def test_an_mdoc_for_another_nonce_or_site_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, signed_nonce=b64url(b"x" * 32))
    assert refused(verifier, mdoc(vp)) == "device_binding"
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, origin="https://evil.example")
    assert refused(verifier, mdoc(vp)) == "device_binding"


def test_an_expired_mdoc_is_refused(issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, valid_until=datetime.now(UTC) - timedelta(minutes=1))
    assert refused(verifier, mdoc(vp)) == "expired"


def test_an_mdoc_from_an_untrusted_issuer_is_refused(wallet: Wallet, verifier: CredentialVerifier) -> None:
    assert (
        refused(verifier, mdoc(mdoc_presentation(Issuer(name="Stranger"), wallet, nonce=NONCE)))
        == "untrusted_issuer"
    )


def test_an_mdoc_without_device_binding_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, device_signature=False)
    assert refused(verifier, mdoc(vp)) == "device_binding"
    # Signed by another device than the one the issuer bound.
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, device=Wallet())
    assert refused(verifier, mdoc(vp)) == "device_binding"


def test_an_mdoc_that_discloses_more_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    more = {NAMESPACE: {"age_over_13": True, "family_name": "Lovelace"}}
    assert (
        refused(verifier, mdoc(mdoc_presentation(issuer, wallet, nonce=NONCE, elements=more)))
        == "extra_claims"
    )
    other_ns = {NAMESPACE: {"age_over_13": True}, "org.example.1": {"member": True}}
    assert (
        refused(verifier, mdoc(mdoc_presentation(issuer, wallet, nonce=NONCE, elements=other_ns)))
        == "extra_claims"
    )
    name_only = {NAMESPACE: {"family_name": "Lovelace"}}
    assert (
        refused(verifier, mdoc(mdoc_presentation(issuer, wallet, nonce=NONCE, elements=name_only)))
        == "extra_claims"
    )
    device = {NAMESPACE: {"given_name": "Ada"}}
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, device_namespaces=device)
    assert refused(verifier, mdoc(vp)) == "extra_claims"


def test_an_mdoc_of_another_doctype_is_refused(
    issuer: Issuer, wallet: Wallet, verifier: CredentialVerifier
) -> None:
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, doctype="org.example.library.1")
    assert refused(verifier, mdoc(vp)) == "untrusted_issuer"


# -- nonces, the response shape, the claim's meaning ---------------------------------------------


def test_a_nonce_is_bound_to_its_cookie_and_spent_once() -> None:
    keys = Keyring.generate()
    book = NonceBook(keys)
    nonce, sealed = book.issue(now=1_000_000)
    assert book.open(sealed, now=1_000_000) == nonce
    book.spend(nonce, now=1_000_000)
    with pytest.raises(CredentialRefused) as caught:
        book.spend(nonce, now=1_000_001)
    assert caught.value.code == "nonce_reused"
    for bad in (None, "", sealed[:-2] + "AA", NonceBook(Keyring.generate()).issue()[1]):
        with pytest.raises(CredentialRefused) as caught:
            book.open(bad, now=1_000_000)
        assert caught.value.code == "wrong_nonce"
    with pytest.raises(CredentialRefused):
        book.open(sealed, now=1_000_000 + book.ttl)  # expired


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"vp_token": "x"},
        {"vp_token": {}},
        {"vp_token": {"age_sd_jwt": ["a", "b"]}},
        {"vp_token": {"age_sd_jwt": ["a"], "age_mdoc": ["b"]}},
        {"vp_token": {"other": ["a"]}},
        {"vp_token": {"age_mdoc": ["!!"]}},
        {"vp_token": {"age_mdoc": [b64url(b"\xa0")]}},
        {"vp_token": {"age_sd_jwt": ["a.b.c~"]}},
    ],
)
def test_answers_that_are_not_one_presentation_are_refused(
    verifier: CredentialVerifier, response: dict[str, Any]
) -> None:
    refused(verifier, response)


@pytest.mark.parametrize(
    ("age_over", "value", "min_age", "outcome"),
    [
        (13, True, 13, "allowed"),
        (18, True, 13, "allowed"),
        (13, False, 13, "under_age"),
        (12, False, 13, "under_age"),
    ],
)
def test_what_an_age_claim_means(age_over: int, value: bool, min_age: int, outcome: str) -> None:
    assert outcome_of(Presentation("mso_mdoc", age_over, value), min_age) == outcome


@pytest.mark.parametrize(("age_over", "value"), [(12, True), (21, False)])
def test_an_age_claim_that_answers_nothing_is_refused(age_over: int, value: bool) -> None:
    with pytest.raises(CredentialRefused) as caught:
        outcome_of(Presentation("dc+sd-jwt", age_over, value), 13)
    assert caught.value.code == "no_age_claim"


def test_the_request_asks_for_the_one_claim(verifier: CredentialVerifier) -> None:
    request = verifier.request("abc", 16)
    assert request["protocol"] == "openid4vp-v1-unsigned"
    data = request["data"]
    assert data["nonce"] == "abc"
    assert data["response_mode"] == "dc_api"
    claims = [query["claims"] for query in data["dcql_query"]["credentials"]]
    assert claims == [
        [{"path": [NAMESPACE, "age_over_16"], "intent_to_retain": False}],
        [{"path": ["age_over_16"]}],
    ]


def test_a_verifier_set_up_wrong_is_refused(issuer: Issuer) -> None:
    with pytest.raises(ConfigurationError):
        TrustList([])
    with pytest.raises(ConfigurationError):
        CredentialVerifier(TrustList([issuer.root]), doctypes=(), vct_values=())
    with pytest.raises(ConfigurationError):
        CredentialVerifier(TrustList([issuer.root]), vct_values="https://one.example")
    with pytest.raises(ConfigurationError):
        CredentialVerifier("trust me")  # type: ignore[arg-type]


def test_each_mdoc_doctype_is_offered_and_accepted(issuer: Issuer, wallet: Wallet) -> None:
    both = CredentialVerifier(
        TrustList([issuer.root]), doctypes=["org.iso.18013.5.1.mDL", "eu.example.age.1"]
    )
    queries = both.request("abc", 13)["data"]["dcql_query"]["credentials"]
    assert [(q["id"], q["meta"]["doctype_value"]) for q in queries] == [
        ("age_mdoc", "org.iso.18013.5.1.mDL"),
        ("age_mdoc_1", "eu.example.age.1"),
    ]
    assert "credential_sets" in both.request("abc", 13)["data"]["dcql_query"]
    vp = mdoc_presentation(issuer, wallet, nonce=NONCE, doctype="eu.example.age.1")
    assert both.verify({"vp_token": {"age_mdoc_1": [vp]}}, nonce=NONCE, origin=ORIGIN).value is True
    # An SD-JWT answer to a verifier that asked for none is refused.
    jwt, disclosures = sd_jwt_credential(issuer, wallet)
    assert refused(both, sd_jwt(sd_jwt_presentation(jwt, disclosures, wallet, nonce=NONCE))) == "malformed"


def test_the_gate_needs_no_credentials_extra_until_it_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from agegate import AgeGate, AgeGateMiddleware, Keyring\n"
        "from agegate.stores import MemoryStore\n"
        "AgeGateMiddleware(lambda *a: None, gate=AgeGate(keys=Keyring.generate(), store=MemoryStore()))\n"
        "assert not {'cbor2', 'pycose', 'joserfc'} & set(sys.modules), sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
