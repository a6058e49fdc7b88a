"""The store contract on the memory and SQLite stores, and what only the SQLite store promises."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import sys
import threading
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_contract import HOUR, T0, StoreContract, h, job, record

from agegate import AgeGate, AgeGateError, Keyring, StoreError, open_store
from agegate.stores import KeyUse, MemoryStore, Store
from agegate.stores.sqlite import APPLICATION_ID, SCHEMA_VERSION, SQLiteStore, sqlite_path

pytestmark = pytest.mark.anyio


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        store = MemoryStore()
        await store.open()
        yield store
        await store.close()


class TestSQLiteStore(StoreContract):
    persistent = True

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
        await store.open()
        yield store
        await store.close()
        await store.close()

    async def reopen(self, store: Store) -> Store:
        await store.close()
        again = SQLiteStore(store.url)
        await again.open()
        return again


# -- URLs ------------------------------------------------------------------------------------


def test_sqlite_urls() -> None:
    assert sqlite_path("sqlite:///agegate.sqlite3") == "agegate.sqlite3"
    assert sqlite_path("sqlite:///data/agegate.db") == "data/agegate.db"
    assert sqlite_path("sqlite:////var/lib/app/agegate.db") == "/var/lib/app/agegate.db"
    assert sqlite_path("SQLITE:///x.db") == "x.db"
    assert isinstance(open_store("sqlite:///x.db"), SQLiteStore)
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:////",
        "sqlite://host/agegate.db",
        "sqlite://[::1/agegate.db",
        "sql[ite://x",
        "sqlite:agegate.db",
        "sqlite:///agegate.db?mode=ro",
        "sqlite:///agegate.db#x",
        "sqlite:///:memory:",
        "sqlite:///file:agegate.db",
        "agegate.db",
        "mysql://localhost/agegate",
        "",
    ],
)
def test_malformed_store_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert isinstance(caught.value, AgeGateError)
    assert "://" in str(caught.value)  # the message shows what a good URL looks like


def test_postgresql_urls_make_a_postgres_store_or_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from agegate.stores.postgres import PostgresStore

    for url in ("postgresql://postgres@127.0.0.1/test", "postgres://x/y", "POSTGRESQL://h/db"):
        assert isinstance(open_store(url), PostgresStore)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if agegate[postgres] were not installed
    with pytest.raises(StoreError, match=r"pip install 'agegate\[postgres\]'"):
        open_store("postgresql://postgres@127.0.0.1/test")


# -- the file --------------------------------------------------------------------------------


async def test_files_are_owner_only_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "agegate.sqlite3"
    old_umask = os.umask(0o022)
    try:
        store = SQLiteStore(f"sqlite:///{path}")
        await store.open()
        try:
            await store.put_attestation(record("a"))
            for suffix in ("", "-wal", "-shm"):
                mode = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
                assert mode == 0o600, (suffix, oct(mode))
        finally:
            await store.close()
    finally:
        os.umask(old_umask)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    store = open_store("sqlite:///data/agegate.sqlite3")
    await store.open()
    await store.close()
    assert (tmp_path / "data" / "agegate.sqlite3").is_file()


async def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/nowhere/agegate.sqlite3")
    with pytest.raises(StoreError, match="does not exist"):
        await store.open()
    await store.close()


async def test_calls_run_off_the_event_loop_thread(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
    await store.open()
    try:
        worker = await store._call(lambda conn: threading.get_ident(), write=False)
        assert worker != threading.get_ident()
    finally:
        await store.close()


async def test_use_before_open_or_after_close_is_a_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
    with pytest.raises(StoreError, match="not open"):
        await store.get_attestation([h("a")])
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.put_attestation(record("a"))
    await store.open()  # a closed store can be opened again
    await store.put_attestation(record("a"))
    assert await store.get_attestation([h("a")]) == record("a")
    await store.close()


# -- schema versions -------------------------------------------------------------------------


async def test_an_older_schema_is_migrated_forward(tmp_path: Path) -> None:
    # Version 0: a file claimed by agegate before any table was made (a crash mid-creation).
    path = tmp_path / "agegate.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.commit()
    conn.close()
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.put_attestation(record("a"))
        assert await store.get_attestation([h("a")]) == record("a")
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_a_version_1_file_is_migrated_and_keeps_its_records(tmp_path: Path) -> None:
    from agegate.stores.sqlite import schema

    # A file as the first release made it, with an attestation and a block in it.
    path = tmp_path / "agegate.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO attestations VALUES (?, 'k1', ?, 'min-age-13', ?)",
        (h("a"), b"mac-a", int(T0.timestamp() * 1_000_000)),
    )
    conn.execute(
        "INSERT INTO identifier_blocks VALUES (?, ?)", (h("e"), int((T0 + HOUR).timestamp() * 1_000_000))
    )
    conn.close()
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    try:
        assert await store.get_attestation([h("a")]) == record("a")
        assert await store.is_blocked([h("e")], now=T0)
        assert await store.key_uses(now=T0) == [KeyUse("k1", attestations=1)]
        await store.register_keys({"k1": b"check"})  # the block written before is adopted
        assert await store.key_uses(now=T0) == [
            KeyUse("k1", attestations=1, blocks=1, blocked_until=T0 + HOUR)
        ]
        assert await store.list_reports() == []  # version 3: the reports table
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


async def test_a_later_migration_runs_on_open_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agegate.stores.sqlite import schema

    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    store = SQLiteStore(url)
    await store.open()
    await store.put_attestation(record("a"))
    await store.close()
    # A future version 2 of the schema, as a release would append it.
    later = (*schema.MIGRATIONS, ("CREATE TABLE future_things (x INTEGER)",))
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    store = SQLiteStore(url)
    await store.open()
    try:
        assert await store.get_attestation([h("a")]) == record("a")
        version, tables = await store._call(
            lambda conn: (
                conn.execute("PRAGMA user_version").fetchone()[0],
                [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")],
            ),
            write=False,
        )
        assert version == SCHEMA_VERSION + 1 and "future_things" in tables
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agegate.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(f"sqlite:///{path}").open()


async def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    for _ in range(3):
        store = SQLiteStore(url)
        await store.open()
        await store.create_job(job("s", job_id="job-1"))
        await store.close()
    store = SQLiteStore(url)
    await store.open()
    try:
        assert [j.job_id for j in await store.list_jobs()] == ["job-1"]
    finally:
        await store.close()


# -- corrupted and foreign files ----------------------------------------------------------------


def _random_file(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.commit()
    conn.close()


def _foreign_app_id(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE attestations (x)")
    conn.commit()
    conn.close()


def _text_file(path: Path) -> None:
    path.write_text("this is not a database\n" * 100)


def _corrupt_agegate_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # the schema page, after the 100-byte header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "make", [_random_file, _foreign_sqlite, _foreign_app_id, _text_file, _corrupt_agegate_db]
)
async def test_corrupted_or_foreign_file_is_a_clear_error(tmp_path: Path, make: object) -> None:
    path = tmp_path / "agegate.sqlite3"
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    gate = AgeGate(keys=Keyring.generate("k"), store=f"sqlite:///{path}")
    with pytest.raises(AgeGateError) as caught:
        await gate.status_of("acct-1")
    assert isinstance(caught.value, StoreError)
    assert not isinstance(caught.value, sqlite3.Error)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None or not isinstance(caught.value.__cause__, sqlite3.Error)
    await gate.aclose()
    assert path.read_bytes() == before  # someone else's file is left exactly as it was


async def test_damage_found_after_opening_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "agegate.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    for i in range(300):
        await store.put_attestation(record(f"a{i}"))
    await store.close()  # checkpoints the WAL into the file
    pages = path.stat().st_size // 4096
    assert pages > 4
    data = bytearray(path.read_bytes())  # keep page 1 (header and schema), break the table's pages
    data[4096 * 2 :] = os.urandom(len(data) - 4096 * 2)
    path.write_bytes(bytes(data))
    again = SQLiteStore(f"sqlite:///{path}")

    async def read_everything() -> None:
        await again.open()
        for i in range(300):
            await again.get_attestation([h(f"a{i}")])

    try:
        with pytest.raises(StoreError, match="damaged"):
            await read_everything()
    finally:
        await again.close()


# -- a busy database -----------------------------------------------------------------------------


async def test_a_busy_database_is_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agegate.stores.sqlite import connection

    # SQLite's own wait gives up quickly here, so the store's retry is what carries the write.
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 20)
    path = tmp_path / "agegate.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        write = asyncio.create_task(store.put_attestation(record("a")))
        await asyncio.sleep(0.3)
        assert not write.done()
        reader = SQLiteStore(store.url)  # readers are not blocked meanwhile (WAL)
        await reader.open()
        assert await reader.get_attestation([h("a")]) is None
        await reader.close()
        other.execute("COMMIT")
        await write
        assert await store.get_attestation([h("a")]) == record("a")
    finally:
        other.close()
        await store.close()


async def test_a_database_that_stays_busy_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agegate.stores.sqlite import connection

    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(connection, "RETRY_FOR", 0.2)
    path = tmp_path / "agegate.sqlite3"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="stayed busy") as caught:
            await store.put_attestation(record("a"))
        assert "locked" not in str(caught.value)
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_worker_reconnects(tmp_path: Path) -> None:
    # A pre-forking server may fork after the store was opened: the child gets a fresh
    # connection and thread instead of hanging on the parent's.
    store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
    await store.open()
    try:
        await store.put_attestation(record("parent"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a threaded process"
            pid = os.fork()
        if pid == 0:  # the child: report by exit status only, never return into pytest
            code = 1
            try:

                async def child() -> bool:
                    await store.put_attestation(record("child"))
                    found = await store.get_attestation([h("parent")]) == record("parent")
                    await store.close()
                    return found

                code = 0 if asyncio.run(asyncio.wait_for(child(), 30)) else 2
            finally:
                os._exit(code)
        for _ in range(600):  # a child that hangs is killed, and the test fails
            done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - non-blocking
            if done:
                break
            await asyncio.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)  # noqa: ASYNC222 - it was just killed
            pytest.fail("the forked child hung on the parent's connection")
        assert os.waitstatus_to_exitcode(status) == 0
        assert await store.get_attestation([h("child")]) == record("child")
    finally:
        await store.close()
