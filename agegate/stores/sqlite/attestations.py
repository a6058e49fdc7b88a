"""The SQLite store's attestations and the identifier blocks of purged child accounts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from ..base import AttestationRecord
from .codec import aware, micros
from .connection import SQLiteConnection

__all__ = ["SQLiteAttestations"]


class SQLiteAttestations(SQLiteConnection):
    """Attestations and identifier blocks."""

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        row = (bytes(record.subject_hash), record.kid, bytes(record.mac), record.policy)
        checked_at = micros(record.checked_at)
        olds = [(bytes(h),) for h in replaces if bytes(h) != row[0]]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM attestations WHERE subject_hash = ?", olds)
            conn.execute(
                "INSERT OR REPLACE INTO attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*row, checked_at),
            )

        await self._call(run, write=True)

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
        ``blocks`` is blocked at ``now``. A new account's (``expected=None``) is one
        ``INSERT … SELECT … WHERE NOT EXISTS`` statement."""
        row = (bytes(record.subject_hash), record.kid, bytes(record.mac), record.policy)
        checked_at = micros(record.checked_at)
        olds = [bytes(h) for h in replaces if bytes(h) != row[0]]
        want = None if expected is None else (bytes(expected.subject_hash), bytes(expected.mac))
        blocked = [bytes(h) for h in blocks]
        at = micros(now) if now is not None else None
        if blocked and at is None:
            return False
        marks = ", ".join("?" * len(blocked))  # placeholders only: the values are parameters
        unblocked = (
            "NOT EXISTS (SELECT 1 FROM identifier_blocks "  # noqa: S608
            f"WHERE identifier_hash IN ({marks}) AND blocked_until > ?)"
        )
        insert_new = (
            "INSERT INTO attestations (subject_hash, kid, mac, policy, checked_at) SELECT ?, ?, ?, ?, ? "  # noqa: S608
            "WHERE NOT EXISTS (SELECT 1 FROM attestations "
            f"WHERE subject_hash IN ({', '.join('?' * (1 + len(olds)))})) AND {unblocked}"
        )

        def run(conn: sqlite3.Connection) -> bool:
            if want is None:
                params = (*row, checked_at, row[0], *olds, *blocked, at)
                return conn.execute(insert_new, params).rowcount == 1
            # BEGIN IMMEDIATE holds the write lock: nothing changes between these checks and the write.
            if blocked and conn.execute("SELECT " + unblocked, (*blocked, at)).fetchone()[0] == 0:
                return False
            taken = conn.execute("SELECT 1 FROM attestations WHERE subject_hash = ?", (row[0],)).fetchone()
            if want[0] != row[0] and taken:  # moving to this key: the account has no record under it
                return False
            found = conn.execute("SELECT mac FROM attestations WHERE subject_hash = ?", (want[0],)).fetchone()
            if found is None or bytes(found[0]) != want[1]:
                return False
            conn.executemany("DELETE FROM attestations WHERE subject_hash = ?", [(h,) for h in olds])
            conn.execute(
                "INSERT OR REPLACE INTO attestations (subject_hash, kid, mac, policy, checked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*row, checked_at),
            )
            return True

        return await self._call(run, write=True)

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        wanted = [bytes(h) for h in subject_hashes]

        def run(conn: sqlite3.Connection) -> AttestationRecord | None:
            return _first_attestation(conn, wanted)

        if not wanted:
            return None
        return await self._call(run, write=False)

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        wanted = list({bytes(h) for h in subject_hashes})

        def run(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute("DELETE FROM attestations WHERE subject_hash = ?", (h,)).rowcount for h in wanted
            )

        return await self._call(run, write=True, scrub=True) if wanted else 0

    # -- identifiers of purged child accounts --------------------------------------------------

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        end = micros(until)
        listed = ",".join(kids)
        rows = [(bytes(h), end, listed) for h in identifier_hashes]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO identifier_blocks (identifier_hash, blocked_until, kids) VALUES (?, ?, ?) "
                "ON CONFLICT (identifier_hash) DO UPDATE SET "
                "kids = CASE WHEN excluded.blocked_until > blocked_until THEN excluded.kids ELSE kids END, "
                "blocked_until = max(blocked_until, excluded.blocked_until)",
                rows,
            )

        if rows:
            await self._call(run, write=True)

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        at = micros(now)
        wanted = [bytes(h) for h in identifier_hashes]

        def run(conn: sqlite3.Connection) -> bool:
            return any(
                conn.execute(
                    "SELECT 1 FROM identifier_blocks WHERE identifier_hash = ? AND blocked_until > ?",
                    (h, at),
                ).fetchone()
                is not None
                for h in wanted
            )

        return await self._call(run, write=False) if wanted else False

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        at = micros(now)

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM identifier_blocks WHERE blocked_until <= ?", (at,)).rowcount

        return await self._call(run, write=True)


def _first_attestation(conn: sqlite3.Connection, subject_hashes: list[bytes]) -> AttestationRecord | None:
    for subject_hash in subject_hashes:
        row = conn.execute(
            "SELECT kid, mac, policy, checked_at FROM attestations WHERE subject_hash = ?", (subject_hash,)
        ).fetchone()
        if row is not None:
            kid, mac, policy, checked_at = row
            return AttestationRecord(subject_hash, kid, bytes(mac), policy, aware(checked_at))
    return None
