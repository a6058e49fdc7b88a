"""The PostgreSQL store's purge job journal: handlers and hashes as arrays, times ``timestamptz``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...errors import StoreError
from .._jobs import JobCodec, JobStatements, SQLJobJournal, Statement, job_from, job_row, step_rows
from ..base import PurgeJob
from .codec import timestamp, utc
from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresJobs"]

_CODEC = JobCodec(
    time=timestamp,
    moment=utc,
    names=list,
    read_names=tuple,
    hashes=list,
    read_hashes=lambda hashes: tuple(bytes(h) for h in hashes),
)
_SQL = JobStatements("agegate_", mark="%s", no_hashes="'{}'")


class PostgresJobs(SQLJobJournal, PostgresConnection):
    """The purge job journal."""

    _job_sql, _job_codec = _SQL, _CODEC

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        row, steps = job_row(job, _CODEC), step_rows(job)
        psycopg = self._psycopg

        async def run(conn: Conn) -> tuple[PurgeJob, bool]:
            # ON CONFLICT waits for a concurrent insert of the same subject to commit, then
            # does nothing: exactly one creator wins.
            try:
                async with conn.transaction():
                    cursor = await conn.execute(
                        _SQL.insert + " ON CONFLICT (subject_hash) DO NOTHING RETURNING job_id", row
                    )
                    inserted = await cursor.fetchone() is not None
            except psycopg.errors.UniqueViolation:
                raise StoreError("a purge job with this id already exists") from None
            if inserted:
                if steps:
                    async with conn.cursor() as cur:
                        await cur.executemany(_SQL.insert_step, steps)
                return (await _select_jobs(conn, "WHERE job_id = %s", (job.job_id,)))[0], True
            existing = await _select_jobs(conn, "WHERE subject_hash = %s", (row[1],))
            if not existing:  # deleted between the conflict and this read
                raise psycopg.errors.SerializationFailure("the conflicting job vanished")
            return existing[0], False

        return await self._run(run)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        async def run(conn: Conn) -> PurgeJob | None:
            found = await _select_jobs(conn, "WHERE job_id = %s", (job_id,))
            return found[0] if found else None

        return await self._run(run)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        wanted = [bytes(h) for h in subject_hashes]

        async def run(conn: Conn) -> PurgeJob | None:
            found = {
                j.subject_hash: j for j in await _select_jobs(conn, "WHERE subject_hash = ANY(%s)", (wanted,))
            }
            return next((found[h] for h in wanted if h in found), None)

        return await self._run(run) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        where = _SQL.unfinished if unfinished_only else ""

        async def run(conn: Conn) -> list[PurgeJob]:
            return await _select_jobs(conn, where + _SQL.oldest_first, ())

        return await self._run(run)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        # The row is locked with FOR UPDATE SKIP LOCKED: while another transaction holds it (a
        # rival claim, or the holder journalling a step) a rival claimer is refused at once. The
        # holder renewing its own lease (or a takeover of the named dead holder) waits instead.
        claim = _SQL.claim(job_id, owner=owner, takeover=takeover, until=timestamp(until), now=timestamp(now))

        async def run(conn: Conn) -> bool:
            select = "SELECT 1 FROM agegate_purge_jobs WHERE job_id = %s FOR UPDATE"
            row = await (await conn.execute(select + " SKIP LOCKED", (job_id,))).fetchone()
            if row is None:
                peek = await (
                    await conn.execute(
                        "SELECT lease_owner FROM agegate_purge_jobs WHERE job_id = %s", (job_id,)
                    )
                ).fetchone()
                if peek is None or peek[0] is None or peek[0] not in (owner, takeover):
                    return False
                row = await (await conn.execute(select, (job_id,))).fetchone()
                if row is None:
                    return False
            return (await conn.execute(*claim)).rowcount == 1

        return await self._run(run)

    async def _journal(self, first: Statement, then: Statement | None = None, *, scrub: bool = False) -> bool:
        async def run(conn: Conn) -> bool:
            if (await conn.execute(*first)).rowcount != 1:
                return False
            if then is not None:
                await conn.execute(*then)
            return True

        # scrub: the server manages its own write-ahead log and old row versions; nothing to do.
        return await self._run(run)

    async def delete_job(self, job_id: str) -> bool:
        async def run(conn: Conn) -> bool:
            cursor = await conn.execute("DELETE FROM agegate_purge_jobs WHERE job_id = %s", (job_id,))
            return cursor.rowcount == 1

        return await self._run(run)


async def _select_jobs(conn: Conn, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    rows = await (await conn.execute(f"{_SQL.select} {tail}", params)).fetchall()
    if not rows:
        return []
    steps: dict[str, dict[str, int]] = {row[0]: {} for row in rows}
    found = await (
        await conn.execute(
            "SELECT job_id, step, count FROM agegate_purge_steps WHERE job_id = ANY(%s) "
            "ORDER BY job_id, position",
            (list(steps),),
        )
    ).fetchall()
    for job_id, step, count in found:
        steps[job_id][step] = int(count)
    return [job_from(row, steps[row[0]], _CODEC) for row in rows]
