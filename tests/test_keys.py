"""Keyring: parsing, rotation order, purpose keys, and errors that carry no key material."""

from __future__ import annotations

import base64

import pytest

from agegate import Keyring, KeyringError
from agegate.keys import PURPOSES

RAW_A = bytes(range(1, 33))
KEY_A = base64.b64encode(RAW_A).decode()
KEY_B = base64.b64encode(bytes(range(100, 148))).decode()


def test_from_string_orders_keys_and_round_trips() -> None:
    ring = Keyring.from_string(f"new:{KEY_B}, old:{KEY_A}")
    assert ring.active_kid == "new"
    assert ring.kids == ("new", "old")
    again = Keyring.from_string(ring.to_string())
    assert again.kids == ring.kids
    assert all(again.purpose_key(p, k) == ring.purpose_key(p, k) for p in PURPOSES for k in ring.kids)


def test_urlsafe_and_unpadded_base64_are_accepted() -> None:
    raw = bytes(range(200, 232))
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert Keyring.from_string(f"k:{text}").to_string() == f"k:{base64.b64encode(raw).decode()}"


def test_purpose_keys_are_distinct_and_not_the_secret() -> None:
    ring = Keyring.from_string(f"a:{KEY_A},b:{KEY_B}")
    derived = {ring.purpose_key(p, k) for p in PURPOSES for k in ring.kids}
    assert len(derived) == len(PURPOSES) * 2
    assert RAW_A not in derived
    assert ring.purpose_key("cookie") == ring.purpose_key("cookie", "a")


def test_generate_gives_fresh_keys() -> None:
    one, two = Keyring.generate(), Keyring.generate()
    assert one.purpose_key("cookie") != two.purpose_key("cookie")
    assert Keyring.generate("demo").active_kid == "demo"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "AGEGATE_SECRET_KEYS"),
        ("   ", "AGEGATE_SECRET_KEYS"),
        (KEY_A, "keyid:base64key"),
        (f"k:{KEY_A},", "entry 2"),
        ("k:", "keyid:base64key"),
        ("k:not base64!!", "not valid base64"),
        (f"k:{base64.b64encode(b'short').decode()}", "at least 32 bytes"),
        (f"k:{KEY_A},k:{KEY_B}", "listed twice"),
        (f"bad id:{KEY_A}", "key id"),
        (f"{'x' * 33}:{KEY_A}", "key id"),
        (f"{KEY_A}:key.v1", "entry 1 is not valid base64"),  # id and key swapped
        (f"my key {KEY_A}:x!", "entry 1 is not valid base64"),
    ],
)
def test_bad_keys_are_refused_without_showing_them(text: str, match: str) -> None:
    with pytest.raises(KeyringError, match=match) as info:
        Keyring.from_string(text)
    message = str(info.value)
    assert KEY_A not in message and KEY_B not in message and "not base64!!" not in message


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGEGATE_SECRET_KEYS", raising=False)
    with pytest.raises(KeyringError, match="AGEGATE_SECRET_KEYS is not set") as info:
        Keyring.from_env()
    # An app with a store needs its own keys: a new one would be refused, so none is suggested.
    assert "keygen" not in str(info.value) and "app's keys" in str(info.value)
    for empty in ("", " "):
        with pytest.raises(KeyringError) as info:
            Keyring.from_string(empty)
        assert "keygen" not in str(info.value)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", f"env:{KEY_A}")
    assert Keyring.from_env().active_kid == "env"
    monkeypatch.setenv("OTHER_KEYS", f"other:{KEY_B}")
    assert Keyring.from_env("OTHER_KEYS").active_kid == "other"


def test_repr_shows_ids_only() -> None:
    ring = Keyring.from_string(f"a:{KEY_A}")
    assert repr(ring) == "Keyring(kids=['a'])"


def test_unknown_purpose_key_is_an_error() -> None:
    with pytest.raises(KeyringError):
        Keyring.from_string(f"a:{KEY_A}").purpose_key("cookie", "nope")


@pytest.mark.parametrize(
    "secret",
    [bytes(32), b"\xff" * 40, b"ab" * 16, b"abc" * 11, b"wxyz" * 8 + b"wx"],
    ids=["zeros", "one-byte", "two-byte-pattern", "three-byte-pattern", "four-byte-pattern"],
)
def test_degenerate_keys_are_refused_without_showing_them(secret: bytes) -> None:
    encoded = base64.b64encode(secret).decode()
    with pytest.raises(KeyringError, match="'weak' is not a secret") as info:
        Keyring.from_string(f"good:{KEY_A},weak:{encoded}")
    assert encoded not in str(info.value) and encoded[:8] not in str(info.value)
    with pytest.raises(KeyringError, match="not a secret"):
        Keyring([("weak", secret)])


def test_a_key_with_a_longer_repeat_is_accepted() -> None:
    # Only trivially repeated keys are refused; anything with a real spread of bytes is used.
    assert Keyring([("k", b"abcde" * 7)]).active_kid == "k"
