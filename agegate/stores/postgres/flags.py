"""The PostgreSQL store's accounts flagged by an under-age age signal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresFlags"]


class PostgresFlags(PostgresConnection):
    """Signal flags."""

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        hashes = [bytes(h) for h in (flag_hash, *known)]

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute(
                "INSERT INTO agegate_signal_flags (flag_hash, sealed) SELECT %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM agegate_signal_flags WHERE flag_hash = ANY(%s)) ON CONFLICT DO NOTHING",
                (bytes(flag_hash), bytes(sealed), hashes),
            )
            return cursor.rowcount == 1

        return await self._run(run)

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        async def run(conn: Conn) -> list[tuple[bytes, bytes]]:
            cursor = await conn.execute(
                "SELECT flag_hash, sealed FROM agegate_signal_flags ORDER BY flag_hash"
            )
            return [(bytes(h), bytes(sealed)) for h, sealed in await cursor.fetchall()]

        return await self._run(run)

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        wanted = list({bytes(h) for h in flag_hashes})

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_signal_flags WHERE flag_hash = ANY(%s)", (wanted,)
            )
            return cursor.rowcount

        return await self._run(run) if wanted else 0
