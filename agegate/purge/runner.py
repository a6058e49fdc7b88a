"""Running purge jobs: the :class:`Purger` that freezes an account, runs its handlers and
blocks its identifiers, journalling every finished step; see :mod:`agegate.purge`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ..errors import InvalidToken, PurgeError
from ..stores import PurgeJob, Store
from ..tokens import Sealer
from . import lease
from .coverage import CoverageReport, Uncovered, check_coverage, find_uncovered
from .dry_run import check_ids, count_handlers
from .journal import (
    BLOCK,
    FREEZE,
    PLANNED,
    POLICY,
    RECEIPT,
    RESERVED_STEPS,
    SIGNING_KEY,
    handler_steps,
    job_policy,
    note,
)
from .match import Match, find_match
from .receipts import make_receipt
from .registry import HandlerRegistry, Registered, StepFailed, rows_deleted
from .report import PurgeReport

if TYPE_CHECKING:
    from ..gate import AgeGate

_now = lease.now


class Purger(HandlerRegistry):
    """The handlers that delete an account's data, and the purge jobs that run them.

    Reach it as ``gate.purger``. ``lease`` is how long a job's lease lasts without renewal (it
    is renewed every third of it while a purge runs); ``wait_timeout`` is how long a purge waits
    for another process working on the same account before giving up. ``identifier_kinds`` are
    the identifier kinds a purge accepts (the kinds the app's signup passes to ``gate.signup``);
    any other kind is refused, since blocking it would block nothing.
    """

    def __init__(self, gate: AgeGate) -> None:
        super().__init__()
        self._gate = gate
        self._sealer: Sealer | None = None
        self.lease = timedelta(seconds=60)
        self.wait_timeout = timedelta(minutes=10)
        self.poll_interval = 0.05

    def _journal(self) -> Sealer:
        if self._sealer is None:
            self._sealer = Sealer(self._gate.keys, "journal")
        return self._sealer

    # -- purging -----------------------------------------------------------------------------

    async def purge(
        self,
        subject: str,
        *,
        ticket: str,
        operator: str,
        identifiers: Mapping[str, str] | None = None,
        dry_run: bool = False,
        receipt: str | None = None,
    ) -> PurgeReport:
        """Freeze the account, run every handler, block its identifiers; see the module docs.

        ``receipt`` names the file the caller will write the job's signed receipt to: it is
        journalled with the job (:attr:`PurgeReport.receipt`), so that whoever finishes an
        interrupted job (``agegate purge --resume``) writes it too.

        Idempotent: a finished purge of the account returns its report with
        ``already_done=True``. When handlers were registered after the account's purge finished,
        the same job is reopened and runs just those (its finished steps stay done), so the
        audit log and the receipt cover them too. Raises :class:`PurgeError` when a step fails
        (the job is then ``failed`` and resumable) and :class:`ConfigurationError` for unusable
        input.
        """
        subject, ticket, operator = self.check_request(
            subject, ticket, operator, identifiers, receipt=receipt
        )
        await self.check_ids(subject)
        notes = () if receipt is None or dry_run else (RECEIPT + receipt,)
        subject_hashes = self._gate.subject_hashes(subject)
        identifier_hashes = tuple(self._gate.identifier_hashes(identifiers))
        store = await self._gate.store()
        if dry_run:
            return await self._dry_run(store, subject, subject_hashes, ticket, operator, identifier_hashes)
        job = await store.find_job(subject_hashes)
        if job is not None and job.state == "done" and self._not_run(job):
            # Handlers added since this account's purge finished (a table the coverage check
            # found): the account id is given again, so the same job runs just those.
            reopened = await store.reopen_job(
                job.job_id,
                handlers=self.names,
                sealed_subject=self._journal().seal_bytes(subject.encode("utf-8")),
                identifier_hashes=identifier_hashes,
                now=_now(),
            )
            job = await store.get_job(job.job_id) or job
            if reopened:
                report = await self._drive(store, job, subject, identifier_hashes, notes)
                # Its block step had run already: block identifiers this call adds.
                await self._block(store, identifier_hashes)
                return report
        if job is None:
            now = _now()
            job, _ = await store.create_job(
                PurgeJob(
                    job_id=secrets.token_hex(8),
                    subject_hash=subject_hashes[0],
                    ticket=ticket,
                    operator=operator,
                    handlers=self.names,
                    state="running",
                    created_at=now,
                    updated_at=now,
                    sealed_subject=self._journal().seal_bytes(subject.encode("utf-8")),
                    identifier_hashes=identifier_hashes,
                    steps={
                        POLICY + self._gate.policy.name: 0,
                        SIGNING_KEY + self._gate.keys.active_kid: 0,
                        **dict.fromkeys(notes, 0),
                    },
                )
            )
        return await self._drive(store, job, subject, identifier_hashes, notes)

    async def find_match(self, subject: str) -> Match:
        """Whether ``subject`` names anything: the store's records or a handler's rows; see
        :mod:`agegate.purge.match`. Changes nothing."""
        return await find_match(self._gate, self.check_subject(subject), self._handlers.values())

    async def resume(self) -> list[PurgeReport]:
        """Finish every unfinished purge job (running with an expired or dead lease, or failed).

        Returns one report per job; a job that failed again has ``state="failed"`` and an
        ``error`` naming the step, instead of raising.
        """
        store = await self._gate.store()
        reports = []
        for job in await store.list_jobs(unfinished_only=True):
            if job.state == "dry_run":
                continue
            try:
                if job.sealed_subject is None:
                    raise PurgeError("the job holds no account id to resume with", job_id=job.job_id)
                try:
                    subject = self._journal().open_bytes(job.sealed_subject).decode("utf-8")
                except (InvalidToken, UnicodeDecodeError):
                    raise PurgeError(
                        f"job {job.job_id} cannot be opened: was its key removed from AGEGATE_SECRET_KEYS?",
                        job_id=job.job_id,
                    ) from None
                # The sealed id must belong to the job's account: a row edited or swapped in the
                # database must not turn a resume into a purge of someone else.
                if job.subject_hash not in self._gate.subject_hashes(subject):
                    raise PurgeError(
                        f"job {job.job_id} does not match its sealed account id; not resuming it",
                        job_id=job.job_id,
                    )
                reports.append(await self._drive(store, job, subject, ()))
            except PurgeError as exc:
                reports.append(
                    PurgeReport(
                        job.job_id,
                        "failed",
                        handler_steps(job),
                        ticket=job.ticket,
                        error=str(exc),
                    )
                )
        return reports

    async def check_ids(self, subject: str) -> None:
        """Check the account id against each handler that knows its key column's type (a
        relational handler on an integer or uuid key): :class:`ConfigurationError` for an id
        the database would read as another one (``+351``). :meth:`purge` calls it before
        anything is frozen or journalled, so the freeze, the journal and the rows name one account."""
        await check_ids(self._handlers.values(), subject)

    async def _dry_run(
        self,
        store: Store,
        subject: str,
        subject_hashes: list[bytes],
        ticket: str,
        operator: str,
        identifier_hashes: tuple[bytes, ...],
    ) -> PurgeReport:
        existing = await store.find_job(subject_hashes)
        job_id = existing.job_id if existing is not None else ""
        counts, uncounted, plan = await count_handlers(
            self._handlers.values(), subject, lambda name, n: self._emit("count", job_id, name, n)
        )
        return PurgeReport(
            job_id,
            "dry_run",
            counts,
            already_done=existing is not None and existing.state == "done",
            ticket=ticket,
            operator=operator,
            identifiers_blocked=self._identifier_count(identifier_hashes),
            uncounted=tuple(uncounted),
            not_run=self._not_run(existing) if existing is not None and existing.state == "done" else (),
            plan=tuple(plan),
        )

    def _identifier_count(self, hashes: Iterable[bytes]) -> int:
        if self._gate.identifier_block <= timedelta(0):
            return 0
        return math.ceil(len(set(hashes)) / len(self._gate.keys.kids))

    async def _drive(
        self,
        store: Store,
        job: PurgeJob,
        subject: str,
        extra_identifiers: tuple[bytes, ...],
        notes: tuple[str, ...] = (),
    ) -> PurgeReport:
        if job.state != "done":
            owner = lease.new_owner()
            lease.LIVE_OWNERS.add(owner)
            try:
                claimed = await lease.acquire(
                    store,
                    job.job_id,
                    owner,
                    lease=self.lease,
                    wait_timeout=self.wait_timeout,
                    poll_interval=self.poll_interval,
                    on_wait=lambda: self._emit("wait", job.job_id, "lease"),
                )
                if claimed is not None:
                    for entry in notes:
                        # An earlier run of the job did not have this note (a receipt asked for
                        # only now): journal it before any step, as a new job would have it.
                        if entry not in claimed.steps and note(claimed, RECEIPT) is None:
                            await store.record_step(job.job_id, owner=owner, step=entry, count=0, now=_now())
                            claimed.steps[entry] = 0
                    return await self._run(store, claimed, owner, subject, extra_identifiers)
            finally:
                lease.LIVE_OWNERS.discard(owner)
        finished = await store.get_job(job.job_id)
        if finished is None or finished.state != "done":
            raise PurgeError(f"purge job {job.job_id} did not finish", job_id=job.job_id)
        if extra_identifiers and self._gate.identifier_block > timedelta(0):
            # A repeated purge may name identifiers the first one did not know.
            await store.block_identifiers(
                extra_identifiers, until=_now() + self._gate.identifier_block, kids=self._gate.keys.kids
            )
        return self._report(finished, already_done=True, not_run=self._not_run(finished))

    async def _run(
        self, store: Store, job: PurgeJob, owner: str, subject: str, extra_identifiers: tuple[bytes, ...]
    ) -> PurgeReport:
        missing = [name for name in job.handlers if name not in self._handlers]
        plan: list[tuple[str, _Run, Step | None]] = [(FREEZE, _plain(lambda: self._freeze(subject)), None)]
        plan += [_handler_step(r, subject) for r in self._handlers.values()]
        identifiers = tuple(dict.fromkeys(job.identifier_hashes + extra_identifiers))
        plan.append((BLOCK, _plain(lambda: self._block(store, identifiers)), None))
        heartbeat = asyncio.create_task(
            lease.heartbeat(store, job.job_id, owner, time.monotonic(), self.lease)
        )
        step = FREEZE
        try:
            if missing:
                raise StepFailed(
                    f"handler {missing[0]!r} of this job is not registered in the app; "
                    "register it again, then resume"
                )
            for step, run, counter in plan:
                if step in job.steps:
                    self._emit("skip", job.job_id, step, job.steps[step])
                    continue
                self._emit("start", job.job_id, step)
                interrupted_before = job.steps.get(PLANNED + step)

                async def journal_planned(planned: int, step: str = step) -> None:
                    # What the handler is about to delete is journalled before it is gone: if
                    # this run is interrupted half-way, the resumed run still reports it all.
                    if PLANNED + step in job.steps:
                        return
                    planned = rows_deleted(planned, step)
                    if not await store.record_step(
                        job.job_id, owner=owner, step=PLANNED + step, count=planned, now=_now()
                    ):
                        raise _LostLease()
                    job.steps[PLANNED + step] = planned

                # A handler that can count but not journal its own count is counted first (the
                # account is frozen, so nothing new arrives). A handler that journals its count
                # (one transaction: delete, journal, commit) is never counted beforehand.
                if counter is not None and interrupted_before is None:
                    await journal_planned(await counter())
                count = rows_deleted(await run(journal_planned), step)
                if interrupted_before is not None:
                    count = max(count, interrupted_before)
                if not await store.record_step(job.job_id, owner=owner, step=step, count=count, now=_now()):
                    raise _LostLease()
                job.steps[step] = count
                self._emit("done", job.job_id, step, count)
            # The heartbeat must be stopped before the job is finished: a renewal landing after
            # finish_job("failed") would otherwise take the released lease again.
            await lease.stop(heartbeat)
            if not await store.finish_job(job.job_id, owner=owner, state="done", now=_now()):
                raise _LostLease()
        except _LostLease:
            raise PurgeError(
                f"another process took over purge job {job.job_id}; it will finish it", job_id=job.job_id
            ) from None
        except Exception as exc:
            what = "step" if step in RESERVED_STEPS else "handler"
            reason = (
                str(exc) if isinstance(exc, StepFailed) else f"{what} {step!r} failed ({type(exc).__name__})"
            )
            await lease.stop(heartbeat)
            # If even this fails the job stays "running"; its lease lapses and resume finishes it.
            with contextlib.suppress(Exception):
                await store.finish_job(job.job_id, owner=owner, state="failed", now=_now(), error=reason)
            raise PurgeError(
                f"{reason}; fix the cause, then finish purge job {job.job_id} with `agegate purge --resume`",
                job_id=job.job_id,
            ) from None
        finally:
            await lease.stop(heartbeat)
        finished = await store.get_job(job.job_id)
        assert finished is not None
        return self._report(finished, already_done=False)

    async def _freeze(self, subject: str) -> int:
        await self._gate.record(subject, "under_age")
        return 1

    async def _block(self, store: Store, identifiers: tuple[bytes, ...]) -> int:
        if not identifiers or self._gate.identifier_block <= timedelta(0):
            return 0
        await store.block_identifiers(
            identifiers, until=_now() + self._gate.identifier_block, kids=self._gate.keys.kids
        )
        return self._identifier_count(identifiers)

    def _not_run(self, job: PurgeJob) -> tuple[str, ...]:
        return tuple(name for name in self._handlers if name not in job.steps)

    def _report(self, job: PurgeJob, *, already_done: bool, not_run: tuple[str, ...] = ()) -> PurgeReport:
        return PurgeReport(
            job.job_id,
            job.state,
            handler_steps(job),
            already_done=already_done,
            ticket=job.ticket,
            operator=job.operator,
            finished_at=job.finished_at,
            identifiers_blocked=job.steps.get(BLOCK, 0),
            error=job.error,
            not_run=not_run,
            receipt=note(job, RECEIPT),
        )

    # -- audit, receipts, coverage -----------------------------------------------------------

    async def jobs(self) -> list[PurgeJob]:
        """Every purge job in the journal, oldest first (the audit log)."""
        store = await self._gate.store()
        return await store.list_jobs()

    async def find(self, *, job_id: str | None = None, ticket: str | None = None) -> PurgeJob | None:
        """The job with this id, or the latest job for this ticket."""
        store = await self._gate.store()
        if job_id is not None:
            return await store.get_job(job_id)
        matches = [job for job in await store.list_jobs() if job.ticket == ticket]
        return matches[-1] if matches else None

    def receipt(self, job: PurgeJob) -> str:
        """The signed deletion receipt (JSON text) of a finished job; see :mod:`agegate.receipts`."""
        if job.state != "done" or job.finished_at is None:
            raise PurgeError(f"purge job {job.job_id} is not finished: no receipt yet", job_id=job.job_id)
        report = self._report(job, already_done=True)
        kid = note(job, SIGNING_KEY)
        return make_receipt(
            self._gate.keys,
            job_id=job.job_id,
            ticket=job.ticket,
            completed_at=job.finished_at,
            deleted=report.deleted,
            policy=job_policy(job) or self._gate.policy.name,
            kid=kid if kid in self._gate.keys.kids else None,
            identifiers_blocked=report.identifiers_blocked,
        )

    async def coverage(self) -> tuple[list[Uncovered], int]:
        """Personal-looking columns of the handlers' SQL databases that no handler purges, and
        the number of tables checked (0 when no database is known); see
        :meth:`coverage_report`, which tells more."""
        exempt = [(ref, column) for ref, column, _ in self._exempt]
        return await find_uncovered(await self.covered_tables(), exempt)

    async def coverage_report(self) -> CoverageReport:
        """Check every SQL database the handlers and exemptions name for personal-looking
        columns nobody purges; see :mod:`agegate.purge.coverage`. Raises
        :class:`~agegate.purge.coverage.NoDatabaseKnown` when they name none."""
        return await check_coverage(await self.covered_tables(), self._exempt)


class _LostLease(Exception):
    pass


Step = Callable[[], Awaitable[int]]
Planned = Callable[[int], Awaitable[None]]
#: A step as the runner calls it: given the function that journals its planned count.
_Run = Callable[[Planned], Awaitable[int]]


def _plain(run: Step) -> _Run:
    return lambda planned: run()


def _handler_step(registered: Registered, subject: str) -> tuple[str, _Run, Step | None]:
    """A handler as a step. A built-in handler object that journals its own count
    (``run_journalled``) is called with the journalling function and is not counted first."""
    obj = registered.obj
    journalled = getattr(obj, "run_journalled", None) if obj is not None and obj is registered.run else None
    if journalled is not None:
        return registered.name, lambda planned: journalled(subject, planned), None
    run, count = registered.run, registered.count
    return registered.name, _plain(lambda: run(subject)), None if count is None else (lambda: count(subject))
