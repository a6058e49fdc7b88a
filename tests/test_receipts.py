"""Deletion receipts: Ed25519 over a canonical payload, keys derived from the keyring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agegate import Keyring
from agegate.purge.receipts import (
    InvalidReceipt,
    make_receipt,
    parse_public_key,
    public_key_text,
    signing_key,
    verify_receipt,
)

KEYS = Keyring.generate("r1")
WHEN = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)


def receipt(keys: Keyring = KEYS) -> str:
    return make_receipt(
        keys,
        job_id="0123abcd",
        ticket="T-1",
        completed_at=WHEN,
        deleted={"orders": 3, "files": 0},
        policy="min-age-13",
        identifiers_blocked=2,
    )


def test_a_receipt_verifies_and_says_what_was_done() -> None:
    text = receipt()
    payload = verify_receipt(text, parse_public_key(public_key_text(KEYS)))
    assert payload == {
        "type": "agegate.deletion-receipt",
        "version": 1,
        "job_id": "0123abcd",
        "ticket": "T-1",
        "completed_at": "2026-06-01T12:30:00+00:00",
        "handlers": [{"name": "orders", "deleted": 3}, {"name": "files", "deleted": 0}],
        "identifiers_blocked": 2,
        "policy": "min-age-13",
        "kid": "r1",
        "public_key": public_key_text(KEYS),
    }
    assert verify_receipt(text.encode(), KEYS) == payload
    assert receipt() == text  # deterministic: reissuing gives the same document


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", "0123abce"),
        ("ticket", "T-2"),
        ("completed_at", "2026-06-01T12:31:00+00:00"),
        ("handlers", [{"name": "orders", "deleted": 4}, {"name": "files", "deleted": 0}]),
        ("handlers", [{"name": "orders", "deleted": 3}]),
        ("identifiers_blocked", 1),
        ("policy", "min-age-16"),
        ("extra", "field"),
    ],
)
def test_any_change_breaks_the_signature(field: str, value: Any) -> None:
    document = json.loads(receipt())
    document["receipt"][field] = value
    with pytest.raises(InvalidReceipt, match="does not verify"):
        verify_receipt(json.dumps(document), KEYS)


def test_the_embedded_public_key_is_not_trusted() -> None:
    forger = Keyring.generate("r1")  # same key id, different secret
    forged = receipt(forger)
    assert json.loads(forged)["receipt"]["public_key"] == public_key_text(forger)
    with pytest.raises(InvalidReceipt):
        verify_receipt(forged, KEYS)
    with pytest.raises(InvalidReceipt):
        verify_receipt(forged, parse_public_key(public_key_text(KEYS)))


def test_rotation_old_receipts_verify_with_the_keyring_that_still_lists_the_key() -> None:
    old = receipt()
    rotated = Keyring.from_string(Keyring.generate("r2").to_string() + "," + KEYS.to_string())
    assert verify_receipt(old, rotated)["kid"] == "r1"
    assert json.loads(receipt(rotated))["receipt"]["kid"] == "r2"
    with pytest.raises(InvalidReceipt, match="not in AGEGATE_SECRET_KEYS"):
        verify_receipt(old, Keyring.generate("r3"))


@pytest.mark.parametrize(
    "text",
    ["", "[]", "{}", '{"receipt": {}, "signature": "x"}', "not json", "\xff", "x" * 70_000],
)
def test_garbage_is_an_invalid_receipt(text: str) -> None:
    with pytest.raises(InvalidReceipt):
        verify_receipt(text, KEYS)


def test_a_bad_signature_encoding_is_an_invalid_receipt() -> None:
    document = json.loads(receipt())
    document["signature"] = "!!!"
    with pytest.raises(InvalidReceipt):
        verify_receipt(json.dumps(document), KEYS)


@pytest.mark.parametrize("text", ["", "abc", "r1:" + "A" * 10, "@@@@"])
def test_bad_public_keys_are_refused_clearly(text: str) -> None:
    with pytest.raises(InvalidReceipt, match="not a base64 Ed25519 key"):
        parse_public_key(text)


def test_the_receipt_key_is_its_own_purpose_key() -> None:
    raw = signing_key(KEYS).private_bytes_raw()
    assert raw == KEYS.purpose_key("receipt")
    assert raw not in {
        KEYS.purpose_key(p) for p in ("cookie", "attestation", "subject", "identifier", "journal")
    }
    assert parse_public_key("r1:" + public_key_text(KEYS)) is not None


@pytest.mark.parametrize("text", ["[" * 30_000 + "]" * 30_000, '{"a":' * 10_000 + "1" + "}" * 10_000])
def test_a_deeply_nested_file_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidReceipt, match="nested too deeply"):
        verify_receipt(text, KEYS)


def test_a_repeated_key_is_refused() -> None:
    # A reader keeping the first "ticket" would see T-666 while the signature covers T-1.
    text = receipt().replace('"ticket": "T-1"', '"ticket": "T-666", "ticket": "T-1"', 1)
    assert text != receipt()
    with pytest.raises(InvalidReceipt, match="a key appears twice"):
        verify_receipt(text, KEYS)
    outer = receipt().replace('"signature":', '"receipt": {}, "signature":', 1)
    with pytest.raises(InvalidReceipt, match="a key appears twice"):
        verify_receipt(outer, KEYS)
