"""A signup is one store transaction: the identifier-block check, the account's record and the
write together, on memory, SQLite and (with AGEGATE_TEST_POSTGRES_URL) PostgreSQL; and a crash
between the check and the write leaves nothing half-written."""

from __future__ import annotations

import inspect
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agegate import AgeGate, Keyring, StoreError, UnderAgeError
from agegate.stores import MemoryStore, Store, add_attestation, open_store

pytestmark = pytest.mark.anyio

ADULT = {"birth_date": "1980-01-01"}
POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
CRASH_SQLITE = "CREATE TRIGGER crash BEFORE INSERT ON attestations BEGIN SELECT RAISE(ABORT, 'crash'); END"


class Counting:
    """A store that counts the calls made to it; each call of a store is one transaction."""

    def __init__(self, store: Any, *, without: tuple[str, ...] = ()) -> None:
        self.store = store
        self.without = without
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self.without:
            raise AttributeError(name)
        method = getattr(self.store, name)
        if not inspect.iscoroutinefunction(method):
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(kind, store URL)``."""
    if request.param == "memory":
        yield "memory", "memory://"
    elif request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path}/agegate.sqlite3"
    else:
        yield "postgres", request.getfixturevalue("postgres_url")


async def test_a_new_accounts_signup_is_one_store_call(backend: tuple[str, str]) -> None:
    _, url = backend
    store = Counting(open_store(url))
    async with AgeGate(keys=Keyring.generate("k1"), store=store) as gate:  # type: ignore[arg-type]
        await gate.purge("kid-1", ticket="T-1", operator="sam", identifiers={"email": "kid@example.org"})
        store.calls.clear()
        await gate.signup(ADULT, subject="adult-1", identifiers={"email": "adult@example.org"})
        assert store.calls == ["swap_attestation"]  # the check and the write: one transaction
        assert await gate.status_of("adult-1") == "allowed"
        store.calls.clear()
        with pytest.raises(UnderAgeError):  # a purged child's email: nothing written, then told why
            await gate.signup(ADULT, subject="adult-2", identifiers={"email": "KID@example.org"})
        assert store.calls == ["swap_attestation", "is_blocked"]
        assert await gate.status_of("adult-2") == "unknown"
        with pytest.raises(UnderAgeError):  # a purged child's account
            await gate.signup(ADULT, subject="kid-1")
        assert await gate.status_of("kid-1") == "under_age"


async def test_an_existing_account_is_read_and_swapped(backend: tuple[str, str]) -> None:
    _, url = backend
    store = Counting(open_store(url))
    async with AgeGate(keys=Keyring.generate("k1"), store=store) as gate:  # type: ignore[arg-type]
        await gate.signup(ADULT, subject="adult-1")
        store.calls.clear()
        await gate.signup(ADULT, subject="adult-1")  # signs up again: the record is replaced
        assert store.calls == ["swap_attestation", "get_attestation", "swap_attestation"]
        assert await gate.status_of("adult-1") == "allowed"


async def test_a_store_without_blocks_on_swap_gets_the_three_calls() -> None:
    """A custom store whose swap_attestation takes no ``blocks`` keeps working, with the same
    answers."""
    store = Counting(MemoryStore(), without=("swaps_unless_blocked",))
    async with AgeGate(keys=Keyring.generate("k1"), store=store) as gate:  # type: ignore[arg-type]
        await gate.purge("kid-1", ticket="T-1", operator="sam", identifiers={"email": "kid@example.org"})
        store.calls.clear()
        await gate.signup(ADULT, subject="adult-1", identifiers={"email": "adult@example.org"})
        assert store.calls == ["is_blocked", "get_attestation", "swap_attestation"]
        with pytest.raises(UnderAgeError):
            await gate.signup(ADULT, subject="adult-2", identifiers={"email": "kid@example.org"})
        with pytest.raises(UnderAgeError):
            await gate.signup(ADULT, subject="kid-1")
        assert [await gate.status_of(s) for s in ("adult-1", "adult-2", "kid-1")] == [
            "allowed",
            "unknown",
            "under_age",
        ]


async def test_the_fallback_and_the_stores_agree(backend: tuple[str, str]) -> None:
    _, url = backend
    keys = Keyring.generate("k1")
    async with AgeGate(keys=keys, store=url) as gate:
        store: Store = await gate.store()
        now = datetime.now(UTC)
        await store.block_identifiers([b"i" * 32], until=now + timedelta(days=1))
        await gate.signup(ADULT, subject="adult-1")
        (old,) = gate.subject_hashes("adult-1")
        record = gate._attestation("adult-2", gate.subject_hashes("adult-2")[0], "allowed", now, gate.policy)
        fallback = Counting(store, without=("swaps_unless_blocked",))
        for where in (store, fallback):
            blocked = await add_attestation(where, record, identifier_hashes=[b"i" * 32], now=now)  # type: ignore[arg-type]
            assert (blocked.blocked, blocked.written, blocked.current) == (True, False, None)
            existing = dataclass_replace(record, subject_hash=old)
            found = await add_attestation(where, existing, identifier_hashes=[b"j" * 32], now=now)  # type: ignore[arg-type]
            assert not found.written and not found.blocked and found.current is not None
            assert found.current.subject_hash == old and found.current.mac != existing.mac
            # A record under an older key (in ``replaces``) is the account's record too.
            under_old = await add_attestation(where, record, replaces=[old], now=now)  # type: ignore[arg-type]
            assert not under_old.written and under_old.current is not None
            assert under_old.current.subject_hash == old
        assert await store.get_attestation([record.subject_hash]) is None


def dataclass_replace(record: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(record, **changes)


async def crash_on_insert(kind: str, url: str, path: Path) -> None:
    """From outside the gate: make every insert of an attestation fail (the process dying
    after the check and before the write has completed)."""
    if kind == "sqlite":
        with sqlite3.connect(path) as conn:
            conn.execute(CRASH_SQLITE)
        return
    import psycopg

    schema = url.rpartition("schema=")[2]
    with psycopg.connect(POSTGRES_URL or "", autocommit=True) as conn:
        conn.execute(
            f'CREATE FUNCTION "{schema}".crash() RETURNS trigger LANGUAGE plpgsql '
            "AS $$ BEGIN RAISE EXCEPTION 'crash'; END $$"
        )
        conn.execute(
            f'CREATE TRIGGER crash BEFORE INSERT ON "{schema}".agegate_attestations '
            f'FOR EACH ROW EXECUTE FUNCTION "{schema}".crash()'
        )


async def test_a_crash_between_the_check_and_the_write_leaves_nothing_half_written(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    kind, url = backend
    if kind == "memory":
        pytest.skip("the memory store has no process to crash: each call is atomic under its lock")
    old_keys = Keyring.generate("k1")
    async with AgeGate(keys=old_keys, store=url) as gate:
        await gate.signup(ADULT, subject="moving")
        (before,) = [await (await gate.store()).get_attestation(gate.subject_hashes("moving"))]
    await crash_on_insert(kind, url, tmp_path / "agegate.sqlite3")
    new_keys = Keyring.from_string(",".join(k.to_string() for k in (Keyring.generate("k2"), old_keys)))
    async with AgeGate(keys=new_keys, store=url) as gate:
        store = await gate.store()
        # A new account: checked, then the write fails: no record, no block touched.
        with pytest.raises(StoreError):
            await gate.signup(ADULT, subject="fresh", identifiers={"email": "fresh@example.org"})
        assert await store.get_attestation(gate.subject_hashes("fresh")) is None
        assert not await gate.is_blocked({"email": "fresh@example.org"})
        # An account under the older key: its move to the new key deletes the old record and
        # writes the new one; the write fails, so the old record is still there, unchanged.
        with pytest.raises(StoreError):
            await gate.signup(ADULT, subject="moving")
        assert await store.get_attestation(gate.subject_hashes("moving")) == before
        assert await gate.status_of("moving") == "allowed"


async def test_a_signup_on_postgresql_is_one_statement_and_no_check_query(
    backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No check query on each pooled connection before use and no transaction block: each
    signup sends one statement (BEGIN and COMMIT would not go through ``execute``, but the
    transaction's reads would)."""
    kind, url = backend
    if kind != "postgres":
        pytest.skip("PostgreSQL only")
    import psycopg

    async with AgeGate(keys=Keyring.generate("k1"), store=url) as gate:
        await gate.signup(ADULT, subject="warm")  # the pool has its connections
        sent: list[str] = []
        execute = psycopg.AsyncConnection.execute

        async def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return await execute(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted)
        for i in range(3):
            await gate.signup(ADULT, subject=f"adult-{i}", identifiers={"email": f"a{i}@example.org"})
        assert len(sent) == 3
        assert all(query.lstrip().startswith("INSERT") for query in sent)
