"""Sealed tokens: round trip, tampering, truncation, rotation, expiry; keyed hashes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import InvalidToken, Keyring
from agegate.tokens import MAX_CLOCK_SKEW, Hasher, Sealer

NOW = 1_790_000_000
RING = Keyring.generate("current")


def seal(sealer: Sealer, outcome: str = "allowed") -> str:
    return sealer.seal(outcome, "min-age-13", issued_at=NOW, expires_at=NOW + 3600)  # type: ignore[arg-type]


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def enc(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip() -> None:
    sealer = Sealer(RING)
    for outcome in ("allowed", "under_age"):
        claims = sealer.open(seal(sealer, outcome), now=NOW + 1)
        assert (claims.outcome, claims.policy, claims.issued_at, claims.expires_at) == (
            outcome,
            "min-age-13",
            NOW,
            NOW + 3600,
        )


def test_tokens_differ_every_time_and_hide_the_outcome() -> None:
    sealer = Sealer(RING)
    tokens = {seal(sealer) for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        data = raw(token)
        assert b"allowed" not in data and b"min-age" not in data


def test_every_single_byte_change_is_rejected() -> None:
    sealer = Sealer(RING)
    data = raw(seal(sealer))
    for i in range(len(data)):
        for delta in (1, 0x80, 0xFF):
            changed = bytearray(data)
            changed[i] = (changed[i] + delta) % 256
            with pytest.raises(InvalidToken):
                sealer.open(enc(bytes(changed)), now=NOW + 1)


def test_every_truncation_and_extension_is_rejected() -> None:
    sealer = Sealer(RING)
    data = raw(seal(sealer))
    for n in range(len(data)):
        with pytest.raises(InvalidToken):
            sealer.open(enc(data[:n]), now=NOW + 1)
    with pytest.raises(InvalidToken):
        sealer.open(enc(data + b"\x00"), now=NOW + 1)


def test_retired_but_listed_key_still_opens_and_unlisted_does_not() -> None:
    old = Keyring.generate("old")
    token = seal(Sealer(old))
    rotated = Keyring.from_string(f"{Keyring.generate('new').to_string()},{old.to_string()}")
    assert Sealer(rotated).open(token, now=NOW).allowed
    assert raw(seal(Sealer(rotated)))[2:5] == b"new"  # the first key seals
    with pytest.raises(InvalidToken):
        Sealer(Keyring.generate("new")).open(token, now=NOW)
    with pytest.raises(InvalidToken):
        Sealer(Keyring.generate("old")).open(token, now=NOW)  # same id, another secret


def test_expiry_and_future_issue_time() -> None:
    sealer = Sealer(RING)
    token = seal(sealer)
    assert sealer.open(token, now=NOW + 3599).allowed
    with pytest.raises(InvalidToken):
        sealer.open(token, now=NOW + 3600)
    assert sealer.open(token, now=NOW - MAX_CLOCK_SKEW).allowed
    with pytest.raises(InvalidToken):
        sealer.open(token, now=NOW - MAX_CLOCK_SKEW - 1)


def test_a_token_is_bound_to_its_purpose() -> None:
    token = seal(Sealer(RING, "cookie"))
    with pytest.raises(InvalidToken):
        Sealer(RING, "journal").open(token, now=NOW)


def test_the_error_says_nothing() -> None:
    sealer = Sealer(RING)
    token = seal(sealer)
    with pytest.raises(InvalidToken) as info:
        sealer.open(token[:-3], now=NOW)
    assert str(info.value) == "invalid or expired token"
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="


def test_every_single_character_change_of_the_string_is_rejected() -> None:
    sealer = Sealer(RING)
    token = seal(sealer)
    for i, original in enumerate(token):
        for replacement in ALPHABET:
            if replacement != original:
                with pytest.raises(InvalidToken):
                    sealer.open(token[:i] + replacement + token[i + 1 :], now=NOW + 1)
    for suffix in ("=", "==", "A", " "):
        with pytest.raises(InvalidToken):
            sealer.open(token + suffix, now=NOW + 1)


@pytest.mark.parametrize("value", [None, b"abc", 5])
def test_a_non_string_token_is_just_invalid(value: object) -> None:
    with pytest.raises(InvalidToken):
        Sealer(RING).open(value, now=NOW)  # type: ignore[arg-type]


def test_exceptions_pickle() -> None:
    import pickle

    from agegate import InvalidBirthDate, UnderAgeError

    assert isinstance(pickle.loads(pickle.dumps(InvalidToken())), InvalidToken)
    error = pickle.loads(pickle.dumps(InvalidBirthDate("empty", "Please enter it.")))
    assert (error.code, error.message) == ("empty", "Please enter it.")
    under = pickle.loads(pickle.dumps(UnderAgeError(reason="blocked")))
    assert under.reason == "blocked"


@given(st.text(max_size=600))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    with pytest.raises(InvalidToken):
        Sealer(RING).open(text, now=NOW)


@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    with pytest.raises(InvalidToken):
        Sealer(RING).open(enc(data), now=NOW)


def test_hasher_rotation_and_constant_time_verify() -> None:
    old = Keyring.generate("old")
    rotated = Keyring.from_string(f"{Keyring.generate('new').to_string()},{old.to_string()}")
    before = Hasher(old, "attestation").digest("acct", "allowed", "p")
    after = Hasher(rotated, "attestation")
    assert after.digests("acct", "allowed", "p")[1] == before
    assert after.verify(before, "acct", "allowed", "p", kid="old")
    assert not after.verify(before, "acct", "under_age", "p", kid="old")
    assert not after.verify(before, "acct", "allowed", "p", kid="new")
    assert not after.verify(before, "acct", "allowed", "p", kid="missing")
    # length-prefixed fields: moving a separator changes the hash
    assert after.digest("ab", "c") != after.digest("a", "bc")
    assert Hasher(rotated, "subject").digest("acct") != after.digest("acct")
