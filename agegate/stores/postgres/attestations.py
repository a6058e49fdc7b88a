"""The PostgreSQL store's attestations and the identifier blocks of purged child accounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ...errors import _WriteConflict
from ..base import AttestationRecord
from .codec import timestamp
from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresAttestations"]


def _blocked_sql(count: int) -> str:
    """A query for any of ``count`` identifier hashes blocked at a time (the last parameter)."""
    marks = ", ".join(["%s"] * count)  # placeholders only: the values are parameters
    return (
        f"SELECT 1 FROM agegate_identifier_blocks WHERE identifier_hash IN ({marks}) "  # noqa: S608
        "AND blocked_until > %s LIMIT 1"
    )


def _insert_new_sql(hashes: int, blocks: int) -> str:
    """A new account's attestation in one statement (``swap_attestation`` with
    ``expected=None``): inserted only if the account has no record under any of its ``hashes``
    and none of ``blocks`` identifier hashes is blocked. ``ON CONFLICT``: a concurrent insert of
    the same account wins, and this one writes nothing. Plain parameters, not arrays: dumping an
    array costs more than the statement's own work."""
    marks = ", ".join(["%s"] * hashes)
    unblocked = f" AND NOT EXISTS ({_blocked_sql(blocks)})" if blocks else ""
    return (
        "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "  # noqa: S608
        "SELECT %s, %s, %s, %s, %s WHERE NOT EXISTS "
        f"(SELECT 1 FROM agegate_attestations WHERE subject_hash IN ({marks})){unblocked} "
        "ON CONFLICT (subject_hash) DO NOTHING"
    )


class PostgresAttestations(PostgresConnection):
    """Attestations and identifier blocks."""

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        subject = bytes(record.subject_hash)
        row = (subject, record.kid, bytes(record.mac), record.policy, timestamp(record.checked_at))
        olds = list({bytes(h) for h in replaces} - {subject})

        async def run(conn: Conn) -> None:
            if olds:
                await conn.execute("DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (olds,))
            await conn.execute(
                "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_hash) DO UPDATE SET "
                "kid = EXCLUDED.kid, mac = EXCLUDED.mac, policy = EXCLUDED.policy, "
                "checked_at = EXCLUDED.checked_at",
                row,
            )

        await self._run(run)

    async def swap_attestation(
        self,
        record: AttestationRecord,
        *,
        replaces: Sequence[bytes] = (),
        expected: AttestationRecord | None,
        blocks: Sequence[bytes] = (),
        now: datetime | None = None,
    ) -> bool:
        """:meth:`put_attestation` only if the account's record is still ``expected`` and none of
        ``blocks`` is blocked at ``now``: the account's row is changed by a conditional
        ``UPDATE`` or inserted with ``ON CONFLICT DO NOTHING``, so a concurrent writer is never
        overwritten. A new account's (``expected=None``) is one statement, one round trip."""
        subject = bytes(record.subject_hash)
        row = (subject, record.kid, bytes(record.mac), record.policy, timestamp(record.checked_at))
        olds = list({bytes(h) for h in replaces} - {subject})
        blocked = [bytes(h) for h in blocks]
        if blocked and now is None:
            return False
        at = timestamp(now) if now is not None else None

        async def insert_new(conn: Conn) -> bool:
            sql = _insert_new_sql(1 + len(olds), len(blocked))
            params = (*row, subject, *olds, *blocked, *((at,) if blocked else ()))
            return (await conn.execute(sql, params)).rowcount == 1

        async def run(conn: Conn) -> bool:
            if blocked:
                found = await (await conn.execute(_blocked_sql(len(blocked)), (*blocked, at))).fetchone()
                if found is not None:
                    return False
            assert expected is not None
            if bytes(expected.subject_hash) == subject:
                cursor = await conn.execute(
                    "UPDATE agegate_attestations SET kid = %s, mac = %s, policy = %s, checked_at = %s "
                    "WHERE subject_hash = %s AND mac = %s",
                    (*row[1:], subject, bytes(expected.mac)),
                )
            else:
                cursor = await conn.execute(
                    "INSERT INTO agegate_attestations (subject_hash, kid, mac, policy, checked_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject_hash) DO NOTHING",
                    row,
                )
            if cursor.rowcount != 1:
                return False
            if bytes(expected.subject_hash) != subject:
                # The expected record was under an older key: it must still be there, unchanged.
                gone = await conn.execute(
                    "DELETE FROM agegate_attestations WHERE subject_hash = %s AND mac = %s",
                    (bytes(expected.subject_hash), bytes(expected.mac)),
                )
                if gone.rowcount != 1:
                    raise _WriteConflict()
            if olds:
                await conn.execute("DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (olds,))
            return True

        if expected is None:
            return await self._run(insert_new, single=True)
        try:
            return await self._run(run)
        except _WriteConflict:
            return False  # the transaction was rolled back

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        wanted = [bytes(h) for h in subject_hashes]

        async def run(conn: Conn) -> AttestationRecord | None:
            rows = await (
                await conn.execute(
                    "SELECT subject_hash, kid, mac, policy, checked_at FROM agegate_attestations "
                    "WHERE subject_hash = ANY(%s)",
                    (wanted,),
                )
            ).fetchall()
            found = {bytes(row[0]): row for row in rows}
            for subject_hash in wanted:
                if subject_hash in found:
                    _, kid, mac, policy, checked_at = found[subject_hash]
                    return AttestationRecord(
                        subject_hash, kid, bytes(mac), policy, checked_at.astimezone(UTC)
                    )
            return None

        return await self._run(run) if wanted else None

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        wanted = list({bytes(h) for h in subject_hashes})

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_attestations WHERE subject_hash = ANY(%s)", (wanted,)
            )
            return cursor.rowcount

        return await self._run(run) if wanted else 0

    # -- identifiers of purged child accounts --------------------------------------------------

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        end = timestamp(until)
        # Deduplicated: one INSERT … ON CONFLICT may not touch a row twice.
        wanted = list(dict.fromkeys(bytes(h) for h in identifier_hashes))

        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO agegate_identifier_blocks (identifier_hash, blocked_until, kids) "
                "SELECT h, %s, %s FROM unnest(%s::bytea[]) AS h "
                "ON CONFLICT (identifier_hash) DO UPDATE SET kids = CASE WHEN "
                "EXCLUDED.blocked_until > agegate_identifier_blocks.blocked_until THEN EXCLUDED.kids "
                "ELSE agegate_identifier_blocks.kids END, blocked_until = "
                "greatest(agegate_identifier_blocks.blocked_until, EXCLUDED.blocked_until)",
                (end, ",".join(kids), wanted),
            )

        if wanted:
            await self._run(run)

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        at = timestamp(now)
        wanted = [bytes(h) for h in identifier_hashes]

        async def run(conn: Conn) -> bool:
            row = await (
                await conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM agegate_identifier_blocks "
                    "WHERE identifier_hash = ANY(%s) AND blocked_until > %s)",
                    (wanted, at),
                )
            ).fetchone()
            return bool(row and row[0])

        return await self._run(run) if wanted else False

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        at = timestamp(now)

        async def run(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM agegate_identifier_blocks WHERE blocked_until <= %s", (at,)
            )
            return cursor.rowcount

        return await self._run(run)
