"""What every store shares about the purge job journal: the lease rule, the job table, the row
mapping and the statements of the two SQL stores (each in its own dialect).

The lease rule is written here once, in the two forms it is checked in: :func:`lease_is_free`
for a job in memory (the memory store) and :data:`LEASE_IS_FREE` as a SQL condition (the
SQLite and PostgreSQL stores, in the ``UPDATE`` that takes the lease). A test holds the two to
the same answers on both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from ..errors import StoreError
from .base import JobState, PurgeJob

__all__ = [
    "FINAL_STATES",
    "JOB_COLUMNS",
    "JOB_STATES",
    "LEASE_IS_FREE",
    "JobCodec",
    "JobStatements",
    "SQLJobJournal",
    "Statement",
    "check_state",
    "job_from",
    "job_row",
    "job_table",
    "lease_is_free",
    "step_rows",
]

JOB_STATES: tuple[JobState, ...] = ("running", "done", "failed", "dry_run")
#: A job in one of these states is finished: its lease cannot be taken again.
FINAL_STATES: tuple[JobState, ...] = ("done", "dry_run")


def _listed(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{state}'" for state in states)


_UNFINISHED = f"state NOT IN ({_listed(FINAL_STATES)})"


def lease_is_free(job: PurgeJob, *, owner: str, takeover: str | None, now: datetime) -> bool:
    """The lease rule: ``owner`` may take the lease of an unfinished job held by nobody, by
    ``owner`` itself, by ``takeover`` (a holder known to be dead), or whose lease ended by ``now``."""
    return job.state not in FINAL_STATES and (
        job.lease_owner in (None, owner, takeover) or (job.lease_until is not None and job.lease_until <= now)
    )


#: :func:`lease_is_free` as a SQL condition on a row of the job table, with ``{mark}`` for the
#: parameters ``owner``, ``takeover`` and ``now`` (a ``NULL`` takeover or lease end matches nothing).
LEASE_IS_FREE = (
    f"{_UNFINISHED} AND (lease_owner IS NULL OR lease_owner IN ({{mark}}, {{mark}}) "
    "OR lease_until <= {mark})"
)


def check_state(state: str) -> None:
    """Refuse a job state the journal does not know."""
    if state not in JOB_STATES:
        raise StoreError(f"unknown purge job state {state!r}")


# The job table: each column, the kind of value it holds and its constraint. The SQL stores
# name their own type for each kind (:func:`job_table`).
_JOB_TABLE = (
    ("job_id", "text", "PRIMARY KEY"),
    ("subject_hash", "bytes", "NOT NULL UNIQUE"),
    ("ticket", "text", "NOT NULL"),
    ("operator", "text", "NOT NULL"),
    ("handlers", "names", "NOT NULL"),
    ("state", "text", f"NOT NULL CHECK (state IN ({_listed(JOB_STATES)}))"),
    ("created_at", "time", "NOT NULL"),
    ("updated_at", "time", "NOT NULL"),
    ("sealed_subject", "bytes", ""),
    ("identifier_hashes", "hashes", "NOT NULL"),
    ("finished_at", "time", ""),
    ("error", "text", ""),
    ("lease_owner", "text", ""),
    ("lease_until", "time", ""),
)
#: The job table's columns, in the order of :func:`job_row` and :func:`job_from`.
JOB_COLUMNS = tuple(name for name, _, _ in _JOB_TABLE)


def job_table(table: str, types: Mapping[str, str]) -> str:
    """The ``CREATE TABLE`` statement of the job table ``table``, with a SQL type for each kind
    of value (``text``, ``bytes``, ``names``, ``hashes``, ``time``)."""
    columns = ",\n".join(
        f"            {name} {types[kind]} {constraint}".rstrip() for name, kind, constraint in _JOB_TABLE
    )
    return f"CREATE TABLE {table} (\n{columns}\n        )"


@dataclass(frozen=True, slots=True)
class JobCodec:
    """How a SQL store writes a job's values to its columns and reads them back."""

    time: Callable[[datetime], Any]
    moment: Callable[[Any], datetime | None]
    names: Callable[[tuple[str, ...]], Any]
    read_names: Callable[[Any], tuple[str, ...]]
    hashes: Callable[[tuple[bytes, ...]], Any]
    read_hashes: Callable[[Any], tuple[bytes, ...]]

    def maybe(self, moment: datetime | None) -> Any:
        return self.time(moment) if moment is not None else None

    def must(self, value: Any) -> datetime:
        found = self.moment(value)
        if found is None:  # NOT NULL columns: never
            raise ValueError("a purge job's time is missing")
        return found


def job_row(job: PurgeJob, codec: JobCodec) -> tuple[Any, ...]:
    """``job`` as a row of :data:`JOB_COLUMNS`."""
    return (
        job.job_id,
        bytes(job.subject_hash),
        job.ticket,
        job.operator,
        codec.names(tuple(job.handlers)),
        job.state,
        codec.time(job.created_at),
        codec.time(job.updated_at),
        bytes(job.sealed_subject) if job.sealed_subject is not None else None,
        codec.hashes(tuple(bytes(h) for h in job.identifier_hashes)),
        codec.maybe(job.finished_at),
        job.error,
        job.lease_owner,
        codec.maybe(job.lease_until),
    )


def job_from(row: tuple[Any, ...], steps: dict[str, int], codec: JobCodec) -> PurgeJob:
    """The :class:`PurgeJob` of a row of :data:`JOB_COLUMNS` and its ``steps``."""
    (job_id, subject_hash, ticket, operator, handlers, state, created, updated, sealed, idents) = row[:10]
    finished_at, error, lease_owner, lease_until = row[10:]
    return PurgeJob(
        job_id=job_id,
        subject_hash=bytes(subject_hash),
        ticket=ticket,
        operator=operator,
        handlers=codec.read_names(handlers),
        state=cast(JobState, state),
        created_at=codec.must(created),
        updated_at=codec.must(updated),
        sealed_subject=bytes(sealed) if sealed is not None else None,
        identifier_hashes=codec.read_hashes(idents),
        steps=steps,
        finished_at=codec.moment(finished_at),
        error=error,
        lease_owner=lease_owner,
        lease_until=codec.moment(lease_until),
    )


def step_rows(job: PurgeJob) -> list[tuple[str, int, str, int]]:
    """The rows of the steps table for a new job's ``steps``, in order."""
    return [(job.job_id, i, step, int(count)) for i, (step, count) in enumerate(job.steps.items())]


#: A statement and its parameters.
Statement = tuple[str, tuple[Any, ...]]


class JobStatements:
    """The job journal's statements for tables ``{prefix}purge_jobs`` and ``{prefix}purge_steps``,
    with parameters marked ``mark`` (``?`` or ``%s``) and ``no_hashes`` the literal of an empty
    ``identifier_hashes``. Each method gives ``(sql, parameters)`` for values already converted
    for the database."""

    def __init__(self, prefix: str, *, mark: str, no_hashes: str) -> None:
        self.jobs, self.steps, self._mark = f"{prefix}purge_jobs", f"{prefix}purge_steps", mark
        self.select = f"SELECT {', '.join(JOB_COLUMNS)} FROM {self.jobs}"  # noqa: S608
        marks = ", ".join([mark] * len(JOB_COLUMNS))
        self.insert = f"INSERT INTO {self.jobs} ({', '.join(JOB_COLUMNS)}) VALUES ({marks})"  # noqa: S608
        self.insert_step = (
            f"INSERT INTO {self.steps} (job_id, position, step, count) "  # noqa: S608
            f"VALUES ({mark}, {mark}, {mark}, {mark})"
        )
        self.oldest_first = " ORDER BY created_at, job_id"
        self.unfinished = f"WHERE {_UNFINISHED}"
        released = (
            f"state = {mark}, error = {mark}, updated_at = {mark}, lease_owner = NULL, lease_until = NULL"
        )
        self._finish = f"UPDATE {self.jobs} SET {released} WHERE job_id = {mark} AND lease_owner = {mark}"  # noqa: S608
        self._finish_final = (
            f"UPDATE {self.jobs} SET {released}, finished_at = {mark}, sealed_subject = NULL, "  # noqa: S608
            f"identifier_hashes = {no_hashes} WHERE job_id = {mark} AND lease_owner = {mark}"
        )

    def claim(self, job_id: str, *, owner: str, takeover: str | None, until: Any, now: Any) -> Statement:
        """Take the lease if :data:`LEASE_IS_FREE`; a failed job runs again."""
        m = self._mark
        sql = (
            f"UPDATE {self.jobs} SET lease_owner = {m}, lease_until = {m}, updated_at = {m}, "  # noqa: S608
            "error = CASE WHEN state = 'failed' THEN NULL ELSE error END, "
            "state = CASE WHEN state = 'failed' THEN 'running' ELSE state END "
            f"WHERE job_id = {m} AND " + LEASE_IS_FREE.format(mark=m)
        )
        return sql, (owner, until, now, job_id, owner, takeover, now)

    def hold(self, job_id: str, *, owner: str, now: Any) -> Statement:
        """Touch the job if ``owner`` holds its lease (one row changed) and lock it meanwhile."""
        m = self._mark
        sql = f"UPDATE {self.jobs} SET updated_at = {m} WHERE job_id = {m} AND lease_owner = {m}"  # noqa: S608
        return sql, (now, job_id, owner)

    def add_step(self, job_id: str, step: str, count: int) -> Statement:
        """Journal a step after the last one; a step journalled before keeps its first count."""
        m = self._mark
        sql = (
            f"INSERT INTO {self.steps} (job_id, position, step, count) "  # noqa: S608
            f"SELECT {m}, coalesce(max(position), -1) + 1, {m}, {m} FROM {self.steps} "
            f"WHERE job_id = {m} ON CONFLICT (job_id, step) DO NOTHING"
        )
        return sql, (job_id, step, int(count), job_id)

    def finish(self, job_id: str, *, owner: str, state: JobState, error: str | None, now: Any) -> Statement:
        """Set ``state`` and release the lease; a final state also wipes the account's traces."""
        if state in FINAL_STATES:
            return self._finish_final, (state, error, now, now, job_id, owner)
        return self._finish, (state, error, now, job_id, owner)

    def reopen(
        self, job_id: str, *, handlers: Any, sealed_subject: bytes, hashes: Any, now: Any
    ) -> Statement:
        """Set a ``done`` job running again, keeping its steps."""
        m = self._mark
        sql = (
            f"UPDATE {self.jobs} SET state = 'running', handlers = {m}, sealed_subject = {m}, "  # noqa: S608
            f"identifier_hashes = {m}, updated_at = {m}, finished_at = NULL, error = NULL, "
            f"lease_owner = NULL, lease_until = NULL WHERE job_id = {m} AND state = 'done'"
        )
        return sql, (handlers, bytes(sealed_subject), hashes, now, job_id)


class SQLJobJournal:
    """The job journal's guarded writes, the same in both SQL stores: each is one statement
    that changes the job's row only if the caller may (a step adds a second), run in one
    transaction by the store's :meth:`_journal`."""

    _job_sql: ClassVar[JobStatements]
    _job_codec: ClassVar[JobCodec]

    async def _journal(self, first: Statement, then: Statement | None = None, *, scrub: bool = False) -> bool:
        """Run ``first`` in one transaction and, if it changed one row, ``then``; returns whether
        it did. ``scrub``: see that no copy of overwritten values stays behind."""
        raise NotImplementedError

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        return await self._journal(*self._step(job_id, owner=owner, step=step, count=count, now=now))

    def _step(
        self, job_id: str, *, owner: str, step: str, count: int, now: datetime
    ) -> tuple[Statement, Statement]:
        """:meth:`record_step`'s statements: hold the lease, then add the step."""
        # The row lock that holding the lease takes orders concurrent steps of this job.
        hold = self._job_sql.hold(job_id, owner=owner, now=self._job_codec.time(now))
        return hold, self._job_sql.add_step(job_id, step, count)

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        check_state(state)
        finish = self._job_sql.finish(
            job_id, owner=owner, state=state, error=error, now=self._job_codec.time(now)
        )
        # A finished job's sealed account id is wiped: no copy of it may stay behind.
        return await self._journal(finish, scrub=state in FINAL_STATES)

    async def reopen_job(
        self,
        job_id: str,
        *,
        handlers: tuple[str, ...],
        sealed_subject: bytes,
        identifier_hashes: tuple[bytes, ...] = (),
        now: datetime,
    ) -> bool:
        codec = self._job_codec
        hashes = codec.hashes(tuple(bytes(h) for h in identifier_hashes))
        reopen = self._job_sql.reopen(
            job_id,
            handlers=codec.names(handlers),
            sealed_subject=sealed_subject,
            hashes=hashes,
            now=codec.time(now),
        )
        return await self._journal(reopen)
