"""AgeGate.signup / status_of / forget_account / delete_expired_blocks over the memory and SQLite stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agegate import AgeGate, AgePolicy, InvalidAccountId, InvalidBirthDate, Keyring, UnderAgeError
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def gate_store(store_url: str) -> str:
    return store_url  # memory, then SQLite


async def test_signup_stores_only_for_allowed(gate: AgeGate) -> None:
    attestation = await gate.signup({"birth_date": "06/01/2013"}, subject="a", now=NOW)
    assert (attestation.outcome, attestation.policy, attestation.kid) == ("allowed", "min-age-13", "test")
    assert attestation.checked_at == NOW
    with pytest.raises(UnderAgeError) as caught:
        await gate.signup({"birth_date": "06/02/2013"}, subject="b", now=NOW)
    assert caught.value.reason == "under_age"
    with pytest.raises(InvalidBirthDate):
        await gate.signup({"birth_date": "yesterday"}, subject="c", now=NOW)
    store = await gate.store()
    assert await store.get_attestation(gate.subject_hashes("a")) is not None
    assert await store.get_attestation(gate.subject_hashes("b")) is None
    assert await store.get_attestation(gate.subject_hashes("c")) is None
    assert [await gate.status_of(s) for s in "abc"] == ["allowed", "unknown", "unknown"]


async def test_a_known_child_account_is_refused(gate: AgeGate) -> None:
    await gate.record("kid", "under_age", now=NOW)
    with pytest.raises(UnderAgeError) as caught:
        await gate.signup({"birth_date": "1970-01-01"}, subject="kid", now=NOW)
    assert caught.value.reason == "blocked"
    assert await gate.status_of("kid") == "under_age"


async def test_blocked_identifiers_are_refused_while_the_block_lasts(gate: AgeGate) -> None:
    store = await gate.store()
    await store.block_identifiers(
        gate.identifier_hashes({"phone": "+1 555 010 9999"}), until=NOW + timedelta(days=1)
    )
    with pytest.raises(UnderAgeError):
        await gate.signup({"age": "30"}, subject="x", identifiers={"phone": "15550109999"}, now=NOW)
    assert await gate.status_of("x") == "unknown"
    later = NOW + timedelta(days=1)
    assert (
        await gate.signup({"age": "30"}, subject="x", identifiers={"phone": "15550109999"}, now=later)
    ).outcome == "allowed"
    assert await gate.delete_expired_blocks(now=later) == 1
    assert await gate.delete_expired_blocks(now=later) == 0


async def test_a_stricter_policy_asks_again(store_url: str, keyring: Keyring) -> None:
    store = MemoryStore() if store_url == "memory://" else store_url
    async with AgeGate(keys=keyring, store=store) as gate:
        await gate.signup({"age": "14"}, subject="teen", now=NOW)
        assert await gate.status_of("teen") == "allowed"
    async with AgeGate(keys=keyring, store=store, policy=AgePolicy(min_age=16)) as stricter:
        assert await stricter.status_of("teen") == "unknown"


async def test_forget_account(gate: AgeGate) -> None:
    await gate.signup({"birth_year": "1990"}, subject="leaving", now=NOW)
    assert await gate.cached_status("leaving") == "allowed"
    assert await gate.forget_account("leaving") == 1
    assert await gate.forget_account("leaving") == 0
    assert await gate.status_of("leaving") == "unknown"
    assert await gate.cached_status("leaving") == "unknown"
    with pytest.raises(InvalidAccountId):
        await gate.forget_account("")
