"""The PostgreSQL store's purge job journal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from ...errors import StoreError
from ..base import JobState, PurgeJob
from .codec import timestamp, utc
from .connection import PostgresConnection

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["PostgresJobs"]

_FINAL = ("done", "dry_run")
_JOB_COLUMNS = (
    "job_id, subject_hash, ticket, operator, handlers, state, created_at, updated_at, "
    "sealed_subject, identifier_hashes, finished_at, error, lease_owner, lease_until"
)


class PostgresJobs(PostgresConnection):
    """The purge job journal."""

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        """Insert ``job`` unless a job for its ``subject_hash`` exists; atomically."""
        row = _job_row(job)
        steps = [(job.job_id, i, step, int(count)) for i, (step, count) in enumerate(job.steps.items())]
        psycopg = self._psycopg

        async def run(conn: Conn) -> tuple[PurgeJob, bool]:
            # ON CONFLICT waits for a concurrent insert of the same subject to commit, then
            # does nothing: exactly one creator wins.
            try:
                async with conn.transaction():
                    cursor = await conn.execute(
                        f"INSERT INTO agegate_purge_jobs ({_JOB_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}) "  # noqa: S608
                        "ON CONFLICT (subject_hash) DO NOTHING RETURNING job_id",
                        row,
                    )
                    inserted = await cursor.fetchone() is not None
            except psycopg.errors.UniqueViolation:
                raise StoreError("a purge job with this id already exists") from None
            if inserted:
                if steps:
                    async with conn.cursor() as cur:
                        await cur.executemany(
                            "INSERT INTO agegate_purge_steps (job_id, position, step, count) "
                            "VALUES (%s, %s, %s, %s)",
                            steps,
                        )
                return (await _select_jobs(conn, "WHERE job_id = %s", (job.job_id,)))[0], True
            existing = await _select_jobs(conn, "WHERE subject_hash = %s", (row[1],))
            if not existing:  # deleted between the conflict and this read
                raise psycopg.errors.SerializationFailure("the conflicting job vanished")
            return existing[0], False

        return await self._run(run)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        """The job with this id, or ``None``."""

        async def run(conn: Conn) -> PurgeJob | None:
            found = await _select_jobs(conn, "WHERE job_id = %s", (job_id,))
            return found[0] if found else None

        return await self._run(run)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        """The job for any of these subject hashes (the first that has one), or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        async def run(conn: Conn) -> PurgeJob | None:
            found = {
                j.subject_hash: j for j in await _select_jobs(conn, "WHERE subject_hash = ANY(%s)", (wanted,))
            }
            return next((found[h] for h in wanted if h in found), None)

        return await self._run(run) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        """Every job (or every job not yet done/dry_run), oldest first."""
        where = "WHERE state NOT IN ('done', 'dry_run')" if unfinished_only else ""

        async def run(conn: Conn) -> list[PurgeJob]:
            return await _select_jobs(conn, where + " ORDER BY created_at, job_id", ())

        return await self._run(run)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        """Take the job's lease for ``owner`` until ``until`` (compare and set); see the protocol.

        The row is locked with ``FOR UPDATE SKIP LOCKED``: while another transaction holds it (a
        rival claim, or the holder journalling a step) a rival claimer is refused at once. The
        holder renewing its own lease (or a takeover of the named dead holder) waits instead.
        """
        end, at = timestamp(until), timestamp(now)

        async def run(conn: Conn) -> bool:
            select = (
                "SELECT state, lease_owner, lease_until FROM agegate_purge_jobs WHERE job_id = %s FOR UPDATE"
            )
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
            state, lease_owner, lease_until = row
            free = (
                lease_owner is None
                or lease_owner == owner
                or (takeover is not None and lease_owner == takeover)
                or (lease_until is not None and lease_until <= at)
            )
            if state in _FINAL or not free:
                return False
            await conn.execute(
                "UPDATE agegate_purge_jobs SET lease_owner = %s, lease_until = %s, updated_at = %s, "
                "error = CASE WHEN state = 'failed' THEN NULL ELSE error END, "
                "state = CASE WHEN state = 'failed' THEN 'running' ELSE state END "
                "WHERE job_id = %s",
                (owner, end, at, job_id),
            )
            return True

        return await self._run(run)

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """Journal a finished step if ``owner`` holds the lease; a repeated step keeps its first count."""
        at = timestamp(now)

        async def run(conn: Conn) -> bool:
            held = await conn.execute(
                "UPDATE agegate_purge_jobs SET updated_at = %s WHERE job_id = %s AND lease_owner = %s",
                (at, job_id, owner),
            )
            if held.rowcount != 1:
                return False
            # The row lock taken just above orders concurrent steps of this job.
            await conn.execute(
                "INSERT INTO agegate_purge_steps (job_id, position, step, count) "
                "SELECT %s, coalesce(max(position), -1) + 1, %s, %s FROM agegate_purge_steps "
                "WHERE job_id = %s ON CONFLICT (job_id, step) DO NOTHING",
                (job_id, step, int(count), job_id),
            )
            return True

        return await self._run(run)

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        """Set the job's final (or failed) state and release the lease, if ``owner`` holds it."""
        if state not in ("running", "done", "failed", "dry_run"):
            raise StoreError(f"unknown purge job state {state!r}")
        at = timestamp(now)
        if state in _FINAL:
            sql = (
                "UPDATE agegate_purge_jobs SET state = %s, error = %s, updated_at = %s, lease_owner = NULL, "
                "lease_until = NULL, finished_at = %s, sealed_subject = NULL, identifier_hashes = '{}' "
                "WHERE job_id = %s AND lease_owner = %s"
            )
            params: tuple[Any, ...] = (state, error, at, at, job_id, owner)
        else:
            sql = (
                "UPDATE agegate_purge_jobs SET state = %s, error = %s, updated_at = %s, lease_owner = NULL, "
                "lease_until = NULL WHERE job_id = %s AND lease_owner = %s"
            )
            params = (state, error, at, job_id, owner)

        async def run(conn: Conn) -> bool:
            return (await conn.execute(sql, params)).rowcount == 1

        return await self._run(run)

    async def reopen_job(
        self,
        job_id: str,
        *,
        handlers: tuple[str, ...],
        sealed_subject: bytes,
        identifier_hashes: tuple[bytes, ...] = (),
        now: datetime,
    ) -> bool:
        """Set a ``done`` job running again with these handlers, keeping its steps."""
        hashes = [bytes(h) for h in identifier_hashes]
        params = (list(handlers), bytes(sealed_subject), hashes, timestamp(now), job_id)

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute(
                "UPDATE agegate_purge_jobs SET state = 'running', handlers = %s, sealed_subject = %s, "
                "identifier_hashes = %s, updated_at = %s, finished_at = NULL, error = NULL, "
                "lease_owner = NULL, lease_until = NULL WHERE job_id = %s AND state = 'done'",
                params,
            )
            return cursor.rowcount == 1

        return await self._run(run)

    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and its steps. Returns whether it existed."""

        async def run(conn: Conn) -> bool:
            cursor = await conn.execute("DELETE FROM agegate_purge_jobs WHERE job_id = %s", (job_id,))
            return cursor.rowcount == 1

        return await self._run(run)


def _job_row(job: PurgeJob) -> tuple[Any, ...]:
    return (
        job.job_id,
        bytes(job.subject_hash),
        job.ticket,
        job.operator,
        list(job.handlers),
        job.state,
        timestamp(job.created_at),
        timestamp(job.updated_at),
        bytes(job.sealed_subject) if job.sealed_subject is not None else None,
        [bytes(h) for h in job.identifier_hashes],
        timestamp(job.finished_at) if job.finished_at is not None else None,
        job.error,
        job.lease_owner,
        timestamp(job.lease_until) if job.lease_until is not None else None,
    )


async def _select_jobs(conn: Conn, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    rows = await (
        await conn.execute(f"SELECT {_JOB_COLUMNS} FROM agegate_purge_jobs {tail}", params)  # noqa: S608
    ).fetchall()
    if not rows:
        return []
    steps: dict[str, dict[str, int]] = {row[0]: {} for row in rows}
    step_rows = await (
        await conn.execute(
            "SELECT job_id, step, count FROM agegate_purge_steps WHERE job_id = ANY(%s) "
            "ORDER BY job_id, position",
            (list(steps),),
        )
    ).fetchall()
    for job_id, step, count in step_rows:
        steps[job_id][step] = int(count)
    jobs = []
    for row in rows:
        (job_id, subject_hash, ticket, operator, handlers, state, created, updated, sealed, idents) = row[:10]
        finished_at, error, lease_owner, lease_until = row[10:]
        jobs.append(
            PurgeJob(
                job_id=job_id,
                subject_hash=bytes(subject_hash),
                ticket=ticket,
                operator=operator,
                handlers=tuple(handlers),
                state=cast(JobState, state),
                created_at=created.astimezone(UTC),
                updated_at=updated.astimezone(UTC),
                sealed_subject=bytes(sealed) if sealed is not None else None,
                identifier_hashes=tuple(bytes(h) for h in idents),
                steps=steps[job_id],
                finished_at=utc(finished_at),
                error=error,
                lease_owner=lease_owner,
                lease_until=utc(lease_until),
            )
        )
    return jobs
