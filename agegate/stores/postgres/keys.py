"""The PostgreSQL store's record of the keys its records were written under."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from ..base import KeyUse, key_uses_from
from .codec import timestamp
from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresKeys"]


class PostgresKeys(PostgresConnection):
    """Key checks and key uses."""

    async def key_checks(self) -> dict[str, bytes]:
        async def run(conn: Conn) -> dict[str, bytes]:
            rows = await (await conn.execute("SELECT kid, check_value FROM agegate_key_checks")).fetchall()
            return {kid: bytes(check) for kid, check in rows}

        return await self._run(run)

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        kids, values = list(checks), [bytes(v) for v in checks.values()]

        async def run(conn: Conn) -> dict[str, bytes]:
            if kids:
                known = await (await conn.execute("SELECT 1 FROM agegate_key_checks LIMIT 1")).fetchone()
                if known is None:
                    await conn.execute(
                        "UPDATE agegate_identifier_blocks SET kids = %s WHERE kids = ''", (",".join(kids),)
                    )
                await conn.execute(
                    "INSERT INTO agegate_key_checks (kid, check_value, registered_at) "
                    "SELECT k, v, now() FROM unnest(%s::text[], %s::bytea[]) AS t (k, v) "
                    "ON CONFLICT (kid) DO NOTHING",
                    (kids, values),
                )
            rows = await (await conn.execute("SELECT kid, check_value FROM agegate_key_checks")).fetchall()
            return {kid: bytes(check) for kid, check in rows}

        return await self._run(run)

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        at = timestamp(now)

        async def run(conn: Conn) -> list[KeyUse]:
            attestations = await (
                await conn.execute("SELECT kid, count(*) FROM agegate_attestations GROUP BY kid")
            ).fetchall()
            blocks = await (
                await conn.execute(
                    "SELECT kids, count(*), max(blocked_until) FROM agegate_identifier_blocks "
                    "WHERE blocked_until > %s GROUP BY kids",
                    (at,),
                )
            ).fetchall()
            return key_uses_from(
                {kid: int(count) for kid, count in attestations},
                [(kids.split(",") if kids else [], int(count), latest) for kids, count, latest in blocks],
            )

        return await self._run(run)
