"""The change signal: a purge in one process drops every process's cached "allowed" at once."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agegate import AgeGate, Keyring, StoreError
from agegate.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def test_another_store_object_sees_a_bump_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.sqlite3"
    one, two = SQLiteStore(url), SQLiteStore(url)
    await one.open()
    await two.open()
    try:
        before = two.revision()
        await one.bump_revision()
        assert two.revision() == before + 1
        mode = stat.S_IMODE(os.stat(f"{tmp_path}/a.sqlite3-revision").st_mode)
        assert mode == 0o600
    finally:
        await one.close()
        await two.close()


async def test_no_revision_file_next_to_a_foreign_database(tmp_path: Path) -> None:
    foreign = tmp_path / "other.db"
    foreign.write_bytes(os.urandom(4096))
    store = SQLiteStore(f"sqlite:///{foreign}")
    with pytest.raises(StoreError, match=r"^the SQLite database '.*' is damaged or not an agegate database"):
        await store.open()
    await store.close()
    assert not (tmp_path / "other.db-revision").exists()


async def test_a_purge_in_another_process_blocks_a_cached_account_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite3"
    keys = Keyring.generate("k1")
    # A long cache: without the signal this process would keep answering "allowed" for an hour.
    gate = AgeGate(keys=keys, store=f"sqlite:///{db}", status_cache_ttl=3600)
    async with gate:
        await gate.signup({"birth_date": "1990-01-01"}, subject="acct-7", now=NOW)
        gate.forget_status()
        assert await gate.cached_status("acct-7") == "allowed"
        assert gate.peek_status("acct-7") == "allowed"

        script = textwrap.dedent(
            """
            import asyncio, sys
            from agegate import AgeGate, Keyring

            async def main():
                gate = AgeGate(keys=Keyring.from_string(sys.argv[1]), store=sys.argv[2])
                async with gate:
                    await gate.purge("acct-7", ticket="T-1", operator="support")

            asyncio.run(main())
            """
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, keys.to_string(), f"sqlite:///{db}"
        )
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
        assert gate.peek_status("acct-7") is None  # the cache was dropped, not consulted
        assert await gate.cached_status("acct-7") == "under_age"
