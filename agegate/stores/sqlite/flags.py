"""The SQLite store's accounts flagged by an under-age age signal."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .connection import SQLiteConnection

__all__ = ["SQLiteFlags"]


class SQLiteFlags(SQLiteConnection):
    """Signal flags."""

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        hashes = [(bytes(h),) for h in (flag_hash, *known)]
        row = (bytes(flag_hash), bytes(sealed))

        def run(conn: sqlite3.Connection) -> bool:
            for h in hashes:
                if conn.execute("SELECT 1 FROM signal_flags WHERE flag_hash = ?", h).fetchone():
                    return False
            conn.execute("INSERT INTO signal_flags (flag_hash, sealed) VALUES (?, ?)", row)
            return True

        return await self._call(run, write=True)

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        def run(conn: sqlite3.Connection) -> list[tuple[bytes, bytes]]:
            rows = conn.execute("SELECT flag_hash, sealed FROM signal_flags ORDER BY flag_hash").fetchall()
            return [(bytes(h), bytes(sealed)) for h, sealed in rows]

        return await self._call(run, write=False)

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        wanted = [(h,) for h in {bytes(h) for h in flag_hashes}]

        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM signal_flags WHERE flag_hash = ?", h).rowcount for h in wanted
            )

        return await self._call(run, write=True, scrub=True) if wanted else 0
