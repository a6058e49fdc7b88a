"""The SQLite store's purge job journal."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from ...errors import StoreError
from ..base import JobState, PurgeJob
from .codec import aware, micros, moment
from .connection import SQLiteConnection

__all__ = ["SQLiteJobs"]

_FINAL = ("done", "dry_run")
_JOB_COLUMNS = (
    "job_id, subject_hash, ticket, operator, handlers, state, created_at, updated_at, "
    "sealed_subject, identifier_hashes, finished_at, error, lease_owner, lease_until"
)
_INSERT_JOB = f"INSERT INTO purge_jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 14)})"  # noqa: S608


class SQLiteJobs(SQLiteConnection):
    """The purge job journal."""

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        """Insert ``job`` unless a job for its ``subject_hash`` exists; atomically."""
        row = _job_row(job)
        steps = [(job.job_id, i, step, count) for i, (step, count) in enumerate(job.steps.items())]

        def run(conn: sqlite3.Connection) -> tuple[PurgeJob, bool]:
            existing = _select_jobs(conn, "WHERE subject_hash = ?", (row[1],))
            if existing:
                return existing[0], False
            if conn.execute("SELECT 1 FROM purge_jobs WHERE job_id = ?", (job.job_id,)).fetchone():
                raise StoreError("a purge job with this id already exists")
            conn.execute(_INSERT_JOB, row)
            conn.executemany(
                "INSERT INTO purge_steps (job_id, position, step, count) VALUES (?, ?, ?, ?)", steps
            )
            return _select_jobs(conn, "WHERE job_id = ?", (job.job_id,))[0], True

        return await self._call(run, write=True)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        """The job with this id, or ``None``."""

        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            found = _select_jobs(conn, "WHERE job_id = ?", (job_id,))
            return found[0] if found else None

        return await self._call(run, write=False)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        """The job for any of these subject hashes, or ``None``."""
        wanted = [bytes(h) for h in subject_hashes]

        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            for subject_hash in wanted:
                found = _select_jobs(conn, "WHERE subject_hash = ?", (subject_hash,))
                if found:
                    return found[0]
            return None

        return await self._call(run, write=False) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        """Every job (or every job not yet done/dry_run), oldest first."""
        where = "WHERE state NOT IN ('done', 'dry_run')" if unfinished_only else ""

        def run(conn: sqlite3.Connection) -> list[PurgeJob]:
            return _select_jobs(conn, where + " ORDER BY created_at, job_id", ())

        return await self._call(run, write=False)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        """Take the job's lease for ``owner`` until ``until`` (compare and set); see the protocol."""
        end, at = micros(until), micros(now)

        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE purge_jobs SET lease_owner = ?, lease_until = ?, updated_at = ?, "
                "error = CASE WHEN state = 'failed' THEN NULL ELSE error END, "
                "state = CASE WHEN state = 'failed' THEN 'running' ELSE state END "
                "WHERE job_id = ? AND state NOT IN ('done', 'dry_run') AND ("
                "lease_owner IS NULL OR lease_owner = ? OR (? IS NOT NULL AND lease_owner = ?) "
                "OR (lease_until IS NOT NULL AND lease_until <= ?))",
                (owner, end, at, job_id, owner, takeover, takeover, at),
            )
            return cursor.rowcount == 1

        return await self._call(run, write=True)

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """Journal a finished step if ``owner`` holds the lease; a repeated step keeps its first count."""
        at = micros(now)

        def run(conn: sqlite3.Connection) -> bool:
            held = conn.execute(
                "UPDATE purge_jobs SET updated_at = ? WHERE job_id = ? AND lease_owner = ?",
                (at, job_id, owner),
            ).rowcount
            if held != 1:
                return False
            conn.execute(
                "INSERT INTO purge_steps (job_id, position, step, count) "
                "SELECT ?, coalesce(max(position), -1) + 1, ?, ? FROM purge_steps WHERE job_id = ? "
                "ON CONFLICT (job_id, step) DO NOTHING",
                (job_id, step, int(count), job_id),
            )
            return True

        return await self._call(run, write=True)

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        """Set the job's final (or failed) state and release the lease, if ``owner`` holds it."""
        if state not in ("running", "done", "failed", "dry_run"):
            raise StoreError(f"unknown purge job state {state!r}")
        at = micros(now)
        final = state in _FINAL

        def run(conn: sqlite3.Connection) -> bool:
            if final:
                sql = (
                    "UPDATE purge_jobs SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, "
                    "lease_until = NULL, finished_at = ?, sealed_subject = NULL, identifier_hashes = '[]' "
                    "WHERE job_id = ? AND lease_owner = ?"
                )
                params: tuple[Any, ...] = (state, error, at, at, job_id, owner)
            else:
                sql = (
                    "UPDATE purge_jobs SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, "
                    "lease_until = NULL WHERE job_id = ? AND lease_owner = ?"
                )
                params = (state, error, at, job_id, owner)
            return conn.execute(sql, params).rowcount == 1

        # A finished job's sealed account id is wiped: see that no copy stays in the WAL.
        return await self._call(run, write=True, scrub=final)

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
        params = (
            json.dumps(list(handlers)),
            bytes(sealed_subject),
            json.dumps([bytes(h).hex() for h in identifier_hashes]),
            micros(now),
            job_id,
        )

        def run(conn: sqlite3.Connection) -> bool:
            sql = (
                "UPDATE purge_jobs SET state = 'running', handlers = ?, sealed_subject = ?, "
                "identifier_hashes = ?, updated_at = ?, finished_at = NULL, error = NULL, "
                "lease_owner = NULL, lease_until = NULL WHERE job_id = ? AND state = 'done'"
            )
            return conn.execute(sql, params).rowcount == 1

        return await self._call(run, write=True)

    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and its steps. Returns whether it existed."""

        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM purge_steps WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM purge_jobs WHERE job_id = ?", (job_id,)).rowcount == 1

        return await self._call(run, write=True)


def _job_row(job: PurgeJob) -> tuple[Any, ...]:
    return (
        job.job_id,
        bytes(job.subject_hash),
        job.ticket,
        job.operator,
        json.dumps(list(job.handlers)),
        job.state,
        micros(job.created_at),
        micros(job.updated_at),
        bytes(job.sealed_subject) if job.sealed_subject is not None else None,
        json.dumps([bytes(h).hex() for h in job.identifier_hashes]),
        micros(job.finished_at) if job.finished_at is not None else None,
        job.error,
        job.lease_owner,
        micros(job.lease_until) if job.lease_until is not None else None,
    )


def _select_jobs(conn: sqlite3.Connection, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    rows = conn.execute(f"SELECT {_JOB_COLUMNS} FROM purge_jobs {tail}", params).fetchall()  # noqa: S608
    jobs = []
    for row in rows:
        (job_id, subject_hash, ticket, operator, handlers, state, created, updated, sealed, idents) = row[:10]
        finished_at, error, lease_owner, lease_until = row[10:]
        steps = conn.execute(
            "SELECT step, count FROM purge_steps WHERE job_id = ? ORDER BY position", (job_id,)
        ).fetchall()
        jobs.append(
            PurgeJob(
                job_id=job_id,
                subject_hash=bytes(subject_hash),
                ticket=ticket,
                operator=operator,
                handlers=tuple(json.loads(handlers)),
                state=cast(JobState, state),
                created_at=aware(created),
                updated_at=aware(updated),
                sealed_subject=bytes(sealed) if sealed is not None else None,
                identifier_hashes=tuple(bytes.fromhex(h) for h in json.loads(idents)),
                steps={step: count for step, count in steps},
                finished_at=moment(finished_at),
                error=error,
                lease_owner=lease_owner,
                lease_until=moment(lease_until),
            )
        )
    return jobs
