"""Keys and the store: a keyring that cannot read the store, or drops a key its records still
need, is refused naming the key ids; records move to the active key as they are read.

Run on every backend: memory, SQLite and (with AGEGATE_TEST_POSTGRES_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agegate import AgeGate, Keyring, KeyringMismatch, PurgeError, UnderAgeError
from agegate.stores import MemoryStore, Store

pytestmark = pytest.mark.anyio

ADULT = {"birth_date": "1980-01-01"}
POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
StoreOf = Callable[[], "str | Store"]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOf]:
    """Gives, on each call, the same store's data to a new gate (as a restarted app, or the
    command line, would see it)."""
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda: memory
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/agegate.sqlite3"
        yield lambda: url
    else:
        postgres: str = request.getfixturevalue("postgres_url")
        yield lambda: postgres


def rotated(new: Keyring, *older: Keyring) -> Keyring:
    return Keyring.from_string(",".join(k.to_string() for k in (new, *older)))


def assert_no_key_material(error: BaseException, *keyrings: Keyring) -> None:
    for ring in keyrings:
        for entry in ring.to_string().split(","):
            secret = entry.partition(":")[2]
            assert secret not in str(error) and secret[:12] not in str(error)


async def open_gate(keys: Keyring, store: str | Store) -> None:
    async with AgeGate(keys=keys, store=store):
        pass


async def test_a_purge_under_a_new_key_is_refused_and_changes_nothing(store_of: StoreOf) -> None:
    live = Keyring.generate("live")
    async with AgeGate(keys=live, store=store_of()) as app:
        await app.signup(ADULT, subject="adult-1")
        await app.purge("kid-1", ticket="T-1", operator="sam", identifiers={"email": "kid@example.org"})
    # Support staff, told to run `agegate keygen`, purge with a key the app does not use.
    fresh = Keyring.generate()
    support = AgeGate(keys=fresh, store=store_of())
    with pytest.raises(KeyringMismatch, match="shares no key id") as info:
        await support.purge("kid-2", ticket="T-2", operator="sam")
    assert "'live'" in str(info.value) and repr(fresh.active_kid) in str(info.value)
    assert info.value.kids == ("live",)
    assert_no_key_material(info.value, live, fresh)
    async with AgeGate(keys=live, store=store_of()) as app:
        assert await app.status_of("kid-2") == "unknown"  # nothing was frozen under the wrong key
        assert [job.ticket for job in await app.purger.jobs()] == ["T-1"]
        assert await app.status_of("kid-1") == "under_age"
        assert await app.is_blocked({"email": "kid@example.org"})


async def test_a_new_key_under_the_same_id_is_refused(store_of: StoreOf) -> None:
    live = Keyring.generate("live")
    await open_gate(live, store_of())  # even a store with no records yet knows its key
    impostor = Keyring.generate("live")  # `agegate keygen --kid live`
    with pytest.raises(KeyringMismatch, match="not the key this store was written with") as info:
        await open_gate(impostor, store_of())
    assert info.value.kids == ("live",)
    assert_no_key_material(info.value, live, impostor)
    # Listed behind the right key it is refused too: the same id cannot name two keys.
    with pytest.raises(KeyringMismatch, match="'live'"):
        await open_gate(rotated(Keyring.generate("other"), impostor), store_of())
    await open_gate(live, store_of())


async def test_dropping_a_key_still_needed_is_refused_naming_it(store_of: StoreOf) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of()) as app:
        await app.signup(ADULT, subject="adult-1")
        await app.record("kid-1", "under_age")
    await open_gate(rotated(new, old), store_of())  # the rotation: new first, old behind it
    with pytest.raises(KeyringMismatch, match=r"drops key id 'old'.*'old': 2") as info:
        await open_gate(new, store_of())
    assert info.value.kids == ("old",)
    assert_no_key_material(info.value, old, new)


async def test_records_move_to_the_active_key_as_they_are_read(store_of: StoreOf) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of()) as app:
        for n in range(3):
            await app.signup(ADULT, subject=f"adult-{n}")
        await app.purge("kid-1", ticket="T-1", operator="sam")
        await app.record("kid-2", "under_age")
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.status_of("adult-0") == "allowed"
        assert await app.status_of("kid-1") == "under_age"
        assert await app.forget_account("kid-1") == 0  # a child's record is kept, under the new key
        with pytest.raises(UnderAgeError):
            await app.signup(ADULT, subject="kid-2")  # a frozen account signing up again is seen too
        await app.signup(ADULT, subject="adult-1")
        statuses = {s.kid: s for s in await app.key_status()}
        assert (statuses["new"].attestations, statuses["old"].attestations) == (4, 1)  # adult-2 unseen
        assert statuses["old"].needed_until == "indefinitely"
        assert await app.status_of("adult-2") == "allowed"
        assert [s.kid for s in await app.key_status() if s.records] == ["new"]
    # Nothing needs the old key any more: it can be dropped, and every answer stays the same.
    async with AgeGate(keys=new, store=store_of()) as app:
        assert [await app.status_of(f"adult-{n}") for n in range(3)] == ["allowed"] * 3
        assert await app.status_of("kid-1") == "under_age"
        assert await app.status_of("kid-2") == "under_age"
        old_status = [s for s in await app.key_status() if s.kid == "old"]
        assert old_status and not old_status[0].listed and old_status[0].records == 0


async def test_a_record_that_does_not_verify_is_not_moved(store_of: StoreOf) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of()) as app:
        store = await app.store()
        await app.signup(ADULT, subject="acct-1")
        record = await store.get_attestation(app.subject_hashes("acct-1"))
        assert record is not None
        await store.put_attestation(dataclasses.replace(record, mac=bytes(32)))
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.status_of("acct-1") == "unknown"
        statuses = {s.kid: s for s in await app.key_status()}
        assert statuses["old"].attestations == 1 and statuses["new"].attestations == 0


async def test_blocks_need_the_keys_listed_when_they_were_written_until_they_end(
    store_of: StoreOf,
) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of(), identifier_block=timedelta(days=2)) as app:
        await app.purge("kid-1", ticket="T-1", operator="sam", identifiers={"email": "kid@example.org"})
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.status_of("kid-1") == "under_age"  # the freeze moves to the new key
        (status,) = [s for s in await app.key_status() if s.kid == "old"]
        assert (status.attestations, status.blocks) == (0, 1)
        assert isinstance(status.needed_until, datetime)
        assert timedelta(days=1) < status.needed_until - datetime.now(UTC) <= timedelta(days=2)
    # The block would end with the old key: refused until it has ended.
    with pytest.raises(KeyringMismatch, match="'old'"):
        await open_gate(new, store_of())
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.delete_expired_blocks(now=datetime.now(UTC) + timedelta(days=3)) == 1
    await open_gate(new, store_of())


async def test_an_unfinished_purge_needs_its_key_until_it_finishes(store_of: StoreOf) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of()) as app:

        @app.purger.handler("orders")
        async def failing(subject: str) -> int:
            raise RuntimeError("the orders database is down")

        with pytest.raises(PurgeError, match=r"^handler 'orders' failed \(RuntimeError\); "):
            await app.purge("kid-1", ticket="T-1", operator="sam")
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.status_of("kid-1") == "under_age"
        (status,) = [s for s in await app.key_status() if s.kid == "old"]
        assert (status.attestations, status.jobs) == (0, 1)
    with pytest.raises(KeyringMismatch, match=r"'old': 1"):
        await open_gate(new, store_of())
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:

        @app.purger.handler("orders")
        async def working(subject: str) -> int:
            return 0

        (report,) = await app.purger.resume()
        assert report.state == "done"
    await open_gate(new, store_of())


async def test_two_keys_under_one_id_opening_at_once_are_not_both_taken(store_of: StoreOf) -> None:
    store = store_of()
    results = await asyncio.gather(
        *(open_gate(Keyring.generate("same"), store) for _ in range(4)), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(r is None or isinstance(r, KeyringMismatch) for r in results)


async def test_a_store_from_before_key_tracking_refuses_a_keyring_without_its_keys(tmp_path: Path) -> None:
    import agegate.stores.sqlite as sqlite_module

    live = Keyring.generate("live")
    path = tmp_path / "agegate.sqlite3"
    url = f"sqlite:///{path}"
    async with AgeGate(keys=live, store=url) as app:
        await app.signup(ADULT, subject="acct-1")
    # Turn the file back into what the first release wrote: no key checks, schema version 1.
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("DROP TABLE key_checks")
        conn.execute("DROP TABLE reports")
        conn.execute("DROP TABLE signal_flags")
        conn.execute("DROP INDEX attestations_kid")
        conn.execute("ALTER TABLE identifier_blocks DROP COLUMN kids")
        conn.execute("PRAGMA user_version = 1")
    assert sqlite_module.SCHEMA_VERSION == 4
    with pytest.raises(KeyringMismatch, match="drops key id 'live'"):
        await open_gate(Keyring.generate(), url)
    async with AgeGate(keys=live, store=url) as app:
        assert await app.status_of("acct-1") == "allowed"
    with pytest.raises(KeyringMismatch, match="not the key this store was written with"):
        await open_gate(Keyring.generate("live"), url)


async def test_a_rotation_in_two_steps_and_a_process_left_behind(store_of: StoreOf) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    async with AgeGate(keys=old, store=store_of()) as app:
        await app.record("kid-1", "under_age")
    # Step 1: the new key behind the old one. Records stay under the active (old) key.
    async with AgeGate(keys=rotated(old, new), store=store_of()) as app:
        assert await app.status_of("kid-1") == "under_age"
        statuses = {s.kid: s for s in await app.key_status()}
        assert statuses["old"].attestations == 1 and statuses["new"].known
    # Step 2: the new key first; the account seen again moves to it.
    async with AgeGate(keys=rotated(new, old), store=store_of()) as app:
        assert await app.status_of("kid-1") == "under_age"
    # A process still configured with the old key alone could not read the frozen account: it
    # is refused at start, naming the key it lacks, instead of taking the child for unknown.
    with pytest.raises(KeyringMismatch, match="drops key id 'new'") as info:
        await open_gate(old, store_of())
    assert info.value.kids == ("new",)
