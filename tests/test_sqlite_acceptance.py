"""Issue 3's acceptance on the SQLite store: privacy at rest, two processes at once, key rotation."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import secrets
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agegate import AgeGate, Keyring, KeyringMismatch, UnderAgeError
from agegate.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _files(db: Path) -> dict[str, bytes]:
    """The database and every companion file SQLite made next to it (-wal, -shm, -journal)."""
    return {p.name: p.read_bytes() for p in sorted(db.parent.iterdir()) if p.name.startswith(db.name)}


def _person(rng: random.Random, kind: str, i: int, born: date) -> dict[str, Any]:
    tag = secrets.token_hex(4)
    return {
        "subject": f"{kind}-account-{i:03d}-{tag}",
        "email": f"{kind}.{i:03d}.{tag}@example.com",
        "born": born,
        # Half give an ISO date, half the US form, so both spellings went through the screen.
        "fields": {"birth_date": born.isoformat() if i % 2 else born.strftime("%m/%d/%Y")},
    }


def _secrets_of(people: list[dict[str, Any]]) -> list[bytes]:
    out = []
    for p in people:
        born: date = p["born"]
        out += [
            p["subject"].encode(),
            p["email"].encode(),
            p["email"].split("@")[0].encode(),
            born.isoformat().encode(),
            born.strftime("%m/%d/%Y").encode(),
        ]
    return out


async def test_privacy_at_rest(tmp_path: Path) -> None:
    rng = random.Random(20260601)
    adults = [
        _person(rng, "adult", i, date(1950, 1, 1) + timedelta(days=rng.randrange(18_000))) for i in range(100)
    ]
    children = [
        _person(rng, "child", i, date(2014, 1, 1) + timedelta(days=rng.randrange(3_000))) for i in range(100)
    ]
    db = tmp_path / "agegate.sqlite3"
    gate = AgeGate(keys=Keyring.generate("k1"), store=f"sqlite:///{db}")
    async with gate:
        for adult in adults:
            await gate.signup(
                adult["fields"], subject=adult["subject"], identifiers={"email": adult["email"]}, now=NOW
            )
        for child in children:
            with pytest.raises(UnderAgeError):
                await gate.signup(
                    child["fields"], subject=child["subject"], identifiers={"email": child["email"]}, now=NOW
                )
        assert [await gate.status_of(a["subject"]) for a in adults] == ["allowed"] * 100
        assert [await gate.status_of(c["subject"]) for c in children] == ["unknown"] * 100

        # Scan while the store is open: the newest pages are still in the WAL, not yet
        # checkpointed into the database file.
        live = _files(db)
        assert live.get(db.name + "-wal"), "the WAL should hold the recent writes"
        # A positive control: the scan does read the written records (their keyed hashes).
        wal = live[db.name + "-wal"]
        assert all(gate.subject_hashes(a["subject"])[0] in wal for a in adults)
        assert not any(gate.subject_hashes(c["subject"])[0] in b"".join(live.values()) for c in children)

    closed = _files(db)  # closing checkpoints the WAL into the file
    assert closed[db.name]
    forbidden = [*_secrets_of(adults), *_secrets_of(children), b"allowed", b"under_age", b"under age"]
    for name, raw in [*live.items(), *closed.items()]:
        found = [s.decode() for s in forbidden if s in raw or s.upper() in raw]
        assert not found, f"{name} holds {found[:3]}"


def _signup_worker(url: str, keys: str, prefix: str, count: int, barrier: Any, results: Any) -> None:
    async def run() -> list[str]:
        errors: list[str] = []
        gate = AgeGate(keys=Keyring.from_string(keys), store=url)
        barrier.wait(timeout=60)
        async with gate:
            for i in range(count):
                try:
                    await gate.signup({"birth_year": "1990"}, subject=f"{prefix}-{i}")
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
        return errors

    try:
        results.put((prefix, asyncio.run(run())))
    except Exception as exc:  # report, do not hang the parent
        results.put((prefix, [f"{type(exc).__name__}: {exc}"]))


@pytest.mark.slow
async def test_two_processes_sign_up_at_once(tmp_path: Path) -> None:
    db = tmp_path / "agegate.sqlite3"  # not created yet: both processes race to make the schema
    url = f"sqlite:///{db}"
    keys = Keyring.generate("k1")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_signup_worker, args=(url, keys.to_string(), name, 500, barrier, results))
        for name in ("alpha", "beta")
    ]
    for worker in workers:
        worker.start()
    try:
        reports = dict([await asyncio.to_thread(results.get, timeout=240) for _ in workers])
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    assert reports == {"alpha": [], "beta": []}  # no error at all reached the caller
    assert [w.exitcode for w in workers] == [0, 0]

    gate = AgeGate(keys=keys, store=url)
    async with gate:
        statuses = [await gate.status_of(f"{p}-{i}") for p in ("alpha", "beta") for i in range(500)]
    assert statuses == ["allowed"] * 1000
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM attestations").fetchone()[0] == 1000
    finally:
        conn.close()


async def test_key_rotation_keeps_old_records_readable_and_moves_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    old = Keyring.generate("old")
    new = Keyring.generate("new")
    block_end = datetime.now(UTC) + timedelta(days=3650)  # in force whatever the test's clock
    async with AgeGate(keys=old, store=url) as before:
        for i in range(5):
            await before.signup({"birth_date": "1980-02-29"}, subject=f"acct-{i}", now=NOW)
        await before.record("reported-child", "under_age", now=NOW)
        store = await before.store()
        await store.block_identifiers(
            before.identifier_hashes({"email": "kid@example.com"}), until=block_end, kids=before.keys.kids
        )

    rotated = Keyring.from_string(f"{new.to_string()},{old.to_string()}")
    assert rotated.active_kid == "new"
    async with AgeGate(keys=rotated, store=url) as after:
        assert [await after.status_of(f"acct-{i}") for i in range(4)] == ["allowed"] * 4
        assert await after.status_of("reported-child") == "under_age"
        assert await after.is_blocked({"email": "KID@example.com"}, now=NOW)
        with pytest.raises(UnderAgeError):
            await after.signup({"birth_date": "1980-01-01"}, subject="reported-child", now=NOW)
        # A new signup under the new key replaces the old-key record rather than adding one.
        attestation = await after.signup({"birth_date": "1980-01-01"}, subject="acct-0", now=NOW)
        assert attestation.kid == "new"
        assert await after.status_of("acct-0") == "allowed"
        store = await after.store()
        assert isinstance(store, SQLiteStore)
        rows = await store._call(
            lambda conn: conn.execute("SELECT kid, count(*) FROM attestations GROUP BY kid").fetchall(),
            write=False,
        )
        # Every account read since the rotation moved to the new key; acct-4 was not seen.
        assert dict(rows) == {"new": 5, "old": 1}

    # The old key is still needed (acct-4, the block): a keyring without it is refused.
    with pytest.raises(KeyringMismatch, match="drops key id 'old'"):
        async with AgeGate(keys=new, store=url):
            pass
    async with AgeGate(keys=rotated, store=url) as after:
        assert await after.status_of("acct-4") == "allowed"
        store = await after.store()
        await store.delete_expired_blocks(now=block_end)  # the block has ended
        assert [s.kid for s in await after.key_status() if s.records] == ["new"]

    # Once nothing needs it, the old key can be dropped, and nothing it vouched for is lost.
    async with AgeGate(keys=new, store=url) as dropped:
        assert [await dropped.status_of(f"acct-{i}") for i in range(5)] == ["allowed"] * 5
        assert await dropped.status_of("reported-child") == "under_age"
