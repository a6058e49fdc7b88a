"""The SQLite store's purge job journal: handlers and hashes as JSON text, times in microseconds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ...errors import StoreError
from .._jobs import JobCodec, JobStatements, SQLJobJournal, Statement, job_from, job_row, step_rows
from ..base import PurgeJob
from .codec import micros, moment
from .connection import SQLiteConnection

__all__ = ["SQLiteJobs"]

_CODEC = JobCodec(
    time=micros,
    moment=moment,
    names=lambda names: json.dumps(list(names)),
    read_names=lambda text: tuple(json.loads(text)),
    hashes=lambda hashes: json.dumps([h.hex() for h in hashes]),
    read_hashes=lambda text: tuple(bytes.fromhex(h) for h in json.loads(text)),
)
_SQL = JobStatements("", mark="?", no_hashes="'[]'")


class SQLiteJobs(SQLJobJournal, SQLiteConnection):
    """The purge job journal."""

    _job_sql, _job_codec = _SQL, _CODEC

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        row, steps = job_row(job, _CODEC), step_rows(job)

        def run(conn: sqlite3.Connection) -> tuple[PurgeJob, bool]:
            existing = _select_jobs(conn, "WHERE subject_hash = ?", (row[1],))
            if existing:
                return existing[0], False
            if conn.execute("SELECT 1 FROM purge_jobs WHERE job_id = ?", (job.job_id,)).fetchone():
                raise StoreError("a purge job with this id already exists")
            conn.execute(_SQL.insert, row)
            conn.executemany(_SQL.insert_step, steps)
            return _select_jobs(conn, "WHERE job_id = ?", (job.job_id,))[0], True

        return await self._call(run, write=True)

    async def get_job(self, job_id: str) -> PurgeJob | None:
        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            found = _select_jobs(conn, "WHERE job_id = ?", (job_id,))
            return found[0] if found else None

        return await self._call(run, write=False)

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        wanted = [bytes(h) for h in subject_hashes]

        def run(conn: sqlite3.Connection) -> PurgeJob | None:
            for subject_hash in wanted:
                found = _select_jobs(conn, "WHERE subject_hash = ?", (subject_hash,))
                if found:
                    return found[0]
            return None

        return await self._call(run, write=False) if wanted else None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        where = _SQL.unfinished if unfinished_only else ""

        def run(conn: sqlite3.Connection) -> list[PurgeJob]:
            return _select_jobs(conn, where + _SQL.oldest_first, ())

        return await self._call(run, write=False)

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        return await self._journal(
            _SQL.claim(job_id, owner=owner, takeover=takeover, until=micros(until), now=micros(now))
        )

    async def _journal(self, first: Statement, then: Statement | None = None, *, scrub: bool = False) -> bool:
        # scrub: the WAL keeps no copy of what the write overwrote.
        return await self._call(_guarded(first, then), write=True, scrub=scrub)

    def record_step_blocking(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """:meth:`record_step` from a thread that may block
        (:class:`~agegate.stores.base.BlockingJournal`)."""
        statements = self._step(job_id, owner=owner, step=step, count=count, now=now)
        return self._call_blocking(_guarded(*statements), write=True)

    async def delete_job(self, job_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM purge_steps WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM purge_jobs WHERE job_id = ?", (job_id,)).rowcount == 1

        return await self._call(run, write=True)


def _guarded(first: Statement, then: Statement | None) -> Callable[[sqlite3.Connection], bool]:
    """Run ``first`` and, if it changed one row, ``then``; whether it did."""

    def run(conn: sqlite3.Connection) -> bool:
        if conn.execute(*first).rowcount != 1:
            return False
        if then is not None:
            conn.execute(*then)
        return True

    return run


def _select_jobs(conn: sqlite3.Connection, tail: str, params: tuple[Any, ...]) -> list[PurgeJob]:
    jobs = []
    for row in conn.execute(f"{_SQL.select} {tail}", params).fetchall():
        steps = conn.execute(
            "SELECT step, count FROM purge_steps WHERE job_id = ? ORDER BY position", (row[0],)
        ).fetchall()
        jobs.append(job_from(row, {step: count for step, count in steps}, _CODEC))
    return jobs
