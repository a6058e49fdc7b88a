"""The :class:`Purger`: purge an account, resume unfinished jobs, read the audit log, issue
receipts and check coverage; see :mod:`agegate.purge`. Running one job's steps under its
lease is :mod:`agegate.purge.driver`'s part."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ..errors import InvalidToken, PurgeError
from ..stores import PurgeJob, Store
from ..tokens import Sealer
from . import lease
from .coverage import CoverageReport, Uncovered, check_coverage, find_uncovered
from .driver import JobDriver
from .dry_run import check_ids, count_handlers
from .journal import POLICY, RECEIPT, SIGNING_KEY, handler_steps, job_policy, note
from .match import Match, find_match
from .receipts import make_receipt
from .report import PurgeReport

if TYPE_CHECKING:
    from ..gate import AgeGate

__all__ = ["Purger"]

_now = lease.now


class Purger(JobDriver):
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
