"""The SQLite store's record of the keys its records were written under."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime

from ..base import KeyUse, key_uses_from
from .codec import aware, micros
from .connection import SQLiteConnection

__all__ = ["SQLiteKeys"]


class SQLiteKeys(SQLiteConnection):
    """Key checks and key uses."""

    async def key_checks(self) -> dict[str, bytes]:
        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            return {
                kid: bytes(check) for kid, check in conn.execute("SELECT kid, check_value FROM key_checks")
            }

        return await self._call(run, write=False)

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        rows = [(kid, bytes(check), micros(datetime.now(UTC))) for kid, check in checks.items()]
        first = ",".join(checks)

        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            if rows and conn.execute("SELECT 1 FROM key_checks LIMIT 1").fetchone() is None:
                conn.execute("UPDATE identifier_blocks SET kids = ? WHERE kids = ''", (first,))
            conn.executemany(
                "INSERT INTO key_checks (kid, check_value, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (kid) DO NOTHING",
                rows,
            )
            return {
                kid: bytes(check) for kid, check in conn.execute("SELECT kid, check_value FROM key_checks")
            }

        return await self._call(run, write=True)

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        at = micros(now)

        def run(conn: sqlite3.Connection) -> list[KeyUse]:
            attestations = dict(
                conn.execute("SELECT kid, count(*) FROM attestations GROUP BY kid").fetchall()
            )
            blocks = [
                (kids.split(",") if kids else [], count, aware(latest))
                for kids, count, latest in conn.execute(
                    "SELECT kids, count(*), max(blocked_until) FROM identifier_blocks "
                    "WHERE blocked_until > ? GROUP BY kids",
                    (at,),
                )
            ]
            return key_uses_from(attestations, blocks)

        return await self._call(run, write=False)
