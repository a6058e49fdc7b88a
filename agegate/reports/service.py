"""``gate.reports``: reports that a child has an account, from receipt to the answer.

A report is received (:meth:`Reports.submit`, the form at ``{prefix}/report``) without looking
the account up, so the answer is the same whether or not it exists. Support reads it
(``agegate reports list|show``), then either purges the account from it (``agegate purge
--report REF``: :meth:`Reports.begin_purge`, the purge with the report's reference as its
ticket, :meth:`Reports.finish_purge`) or closes it with a reason (:meth:`Reports.close`). A
closed report is answered through the app's :meth:`Reports.on_closed` callbacks, with the signed
deletion receipt after a purge; only once that succeeded is the sealed part (account, contact,
free text) erased. :meth:`Reports.deliver` retries failed answers and closes reports whose
purge was interrupted and finished later.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, InvalidInput, InvalidToken, ReportError
from ..policy import aware
from ..stores import ReportRecord, ReportState, Store
from ..tokens import Hasher, Sealer
from .fields import ACCOUNT_KINDS, ReportFields, read_fields
from .limit import ReportLimit

if TYPE_CHECKING:
    from ..gate import AgeGate
    from ..stores import PurgeJob

__all__ = ["CLOSE_REASONS", "PURGED", "Delivery", "Report", "Reports"]

_log = logging.getLogger("agegate.reports")
#: The outcome of a report whose account was purged.
PURGED = "purged"
#: Why a report may be closed without a purge: fixed codes, so what is kept holds no personal data.
CLOSE_REASONS = ("no-account", "not-a-child", "duplicate", "withdrawn", "unverifiable")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O, U


def new_reference() -> str:
    """A fresh report reference, ``R-XXXX-XXXX-XXXX`` (60 random bits)."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"R-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def is_reference(text: str) -> bool:
    """Whether ``text`` has the shape of a report reference."""
    parts = text.split("-")
    return (
        len(text) == 16
        and len(parts) == 4
        and parts[0] == "R"
        and all(len(p) == 4 and all(c in _ALPHABET for c in p) for p in parts[1:])
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What an :meth:`Reports.on_closed` callback sends to the reporter: the reference, their
    ``contact`` address, the ``outcome`` (``"purged"`` or a close reason from
    :data:`CLOSE_REASONS`) and, after a purge, the signed deletion ``receipt`` (JSON text that
    ``agegate receipt verify`` accepts)."""

    reference: str
    contact: str
    outcome: str
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A report as support sees it: the stored record and, until the answer is delivered,
    what the reporter typed (``fields``; ``None`` once erased)."""

    record: ReportRecord
    fields: ReportFields | None

    @property
    def reference(self) -> str:
        """The report's reference (``R-XXXX-XXXX-XXXX``)."""
        return self.record.reference

    def overdue(self, now: datetime | None = None) -> bool:
        """Whether the report is past its deadline without an answer delivered."""
        return self.record.state != "delivered" and aware(now) > self.record.due_at


Callback = Callable[[Delivery], Any] | Callable[[Delivery], Awaitable[Any]]


class Reports:
    """Reports from parents for one gate; reach it as ``gate.reports``.

    ``deadline`` is how long support has to answer a report (default 7 days; overdue reports
    are flagged by ``agegate reports list``). ``account_kinds`` are the identifiers the report
    form takes for the account (default: email, username, phone, profile URL). ``limit`` is
    the rate limit of the report endpoint (:class:`~agegate.reports.ReportLimit`).
    """

    def __init__(self, gate: AgeGate) -> None:
        self._gate = gate
        self.deadline = timedelta(days=7)
        self.account_kinds: tuple[str, ...] = ACCOUNT_KINDS
        self.limit = ReportLimit()
        self._callbacks: list[Callback] = []
        self._sealer: Sealer | None = None
        self._hasher: Hasher | None = None

    def _seal(self) -> Sealer:
        if self._sealer is None:
            self._sealer = Sealer(self._gate.keys, "report")
        return self._sealer

    def on_closed(self, callback: Callback) -> Callback:
        """Register ``callback(delivery)`` (plain or async; usable as a decorator) to send the
        answer to a closed report, for example by email. Raising means "not sent": the answer
        is retried by ``agegate reports deliver``, and the contact kept until then."""
        if not callable(callback):
            raise ConfigurationError("on_closed takes a function of one Delivery")
        self._callbacks.append(callback)
        return callback

    def account_key(self, account: str) -> bytes:
        """The in-memory rate-limit key of a reported account: HMAC(report key, the account
        case-folded). Never stored."""
        if self._hasher is None:
            self._hasher = Hasher(self._gate.keys, "report")
        return self._hasher.digest("rate-limit", account.strip().casefold())

    def check(self, data: Mapping[str, object]) -> ReportFields:
        """The checked fields of a report (raises :class:`~agegate.InvalidReport`)."""
        kinds = tuple(self.account_kinds)
        if not kinds or any(kind not in ACCOUNT_KINDS for kind in kinds):
            raise ConfigurationError(f"reports.account_kinds takes some of {', '.join(ACCOUNT_KINDS)}")
        return read_fields(data, kinds)

    # -- receiving -----------------------------------------------------------------------------

    async def submit(
        self, data: Mapping[str, object] | ReportFields, *, now: datetime | None = None
    ) -> ReportRecord:
        """Store a report, sealed, and return its record (its ``reference`` and ``due_at`` are
        the answer to give). The account is not looked up. Raises
        :class:`~agegate.InvalidReport` for a field that cannot be used."""
        fields = data if isinstance(data, ReportFields) else self.check(data)
        at = aware(now).astimezone(UTC)
        reference = new_reference()
        record = ReportRecord(
            reference=reference,
            received_at=at,
            due_at=at + self.deadline,
            state="open",
            sealed=self._seal().seal_bytes(fields.to_bytes(reference)),
            updated_at=at,
        )
        await self._gate._ask(lambda store: store.create_report(record))
        _log.info("report %s received", reference)
        return record

    # -- reading -------------------------------------------------------------------------------

    def _open(self, record: ReportRecord) -> Report:
        if record.sealed is None:
            return Report(record, None)
        try:
            raw = self._seal().open_bytes(record.sealed)
            return Report(record, ReportFields.from_bytes(raw, record.reference))
        except (InvalidToken, ValueError, TypeError):
            raise ReportError(
                f"report {record.reference} cannot be opened with these keys (see `agegate keys status`)"
            ) from None

    async def _store(self) -> Store:
        return await self._gate.store()

    async def records(self) -> list[ReportRecord]:
        """Every report's record, oldest first, without opening the sealed parts."""
        return await (await self._store()).list_reports()

    def identifiers(self, report: Report) -> dict[str, str]:
        """The identifiers a purge from ``report`` blocks: its account, when that is of a kind
        the purge knows (``gate.purger.identifier_kinds``; a profile URL is not)."""
        fields = report.fields
        if fields is None or fields.kind not in self._gate.purger.identifier_kinds:
            return {}
        return {fields.kind: fields.account}

    async def all(self) -> list[Report]:
        """Every report, oldest first, opened."""
        return [self._open(record) for record in await (await self._store()).list_reports()]

    async def get(self, reference: str) -> Report:
        """The report ``reference``, opened; :class:`~agegate.ReportError` when there is none."""
        if not isinstance(reference, str) or not is_reference(reference.strip().upper()):
            raise ReportError("a report reference looks like R-XXXX-XXXX-XXXX")
        record = await (await self._store()).get_report(reference.strip().upper())
        if record is None:
            raise ReportError(f"there is no report {reference.strip().upper()}")
        return self._open(record)

    # -- deciding ------------------------------------------------------------------------------

    async def _move(self, record: ReportRecord, expected: ReportState, **changes: Any) -> ReportRecord:
        new = replace(record, updated_at=datetime.now(UTC), **changes)
        if not await (await self._store()).update_report(new, expected=expected):
            raise ReportError(f"report {record.reference} changed meanwhile; look at it again")
        return new

    async def close(self, reference: str, *, reason: str) -> Report:
        """Close an open report that leads to no purge, with ``reason`` (one of
        :data:`CLOSE_REASONS`), and deliver the answer. Returns the report afterwards."""
        if reason not in CLOSE_REASONS:
            raise InvalidInput(f"the reason is one of {', '.join(CLOSE_REASONS)}")
        report = await self.get(reference)
        if report.record.state != "open":
            raise ReportError(f"report {report.reference} is {report.record.state}, not open")
        now = datetime.now(UTC)
        record = await self._move(report.record, "open", state="closed", outcome=reason, closed_at=now)
        _log.info("report %s closed", report.reference)
        return await self._deliver(Report(record, report.fields))

    async def begin_purge(self, reference: str) -> Report:
        """Mark the report as being purged (``purging``), before the purge from it begins; a
        report already ``purging`` (an interrupted purge) stays so."""
        report = await self.get(reference)
        state = report.record.state
        if state == "purging":
            return report
        if state == "closed":
            raise ReportError(
                f"report {report.reference} is closed already and its answer not delivered yet: "
                "run `agegate reports deliver`"
            )
        if state != "open":
            raise ReportError(f"report {report.reference} is {state}: its answer was decided already")
        if report.fields is None:
            raise ReportError(f"report {report.reference} has nothing left to purge from")
        return Report(await self._move(report.record, "open", state="purging"), report.fields)

    async def finish_purge(self, reference: str, job: PurgeJob) -> Report:
        """Close a ``purging`` report after its purge (``job``) is done, and deliver the answer
        with the job's signed receipt. A report closed already is only delivered."""
        report = await self.get(reference)
        if report.record.state == "purging":
            if job.state != "done" or job.ticket != report.reference:
                raise ReportError(f"the purge of report {report.reference} has not finished")
            now = datetime.now(UTC)
            record = await self._move(
                report.record, "purging", state="closed", outcome=PURGED, job_id=job.job_id, closed_at=now
            )
            _log.info("report %s closed", report.reference)
            report = Report(record, report.fields)
        if report.record.state == "closed":
            return await self._deliver(report)
        return report

    # -- answering -----------------------------------------------------------------------------

    async def deliver(self, reference: str | None = None) -> list[Report]:
        """Answer every closed report not yet answered (or just ``reference``), and close the
        reports whose purge finished after it was interrupted (``agegate purge --resume``).
        Returns the reports it worked on, afterwards; failed ones keep ``state="closed"``."""
        reports = [await self.get(reference)] if reference else await self.all()
        done: list[Report] = []
        for report in reports:
            if report.record.state == "purging":
                job = await self._gate.purger.find(ticket=report.reference)
                if job is not None and job.state == "done":
                    done.append(await self.finish_purge(report.reference, job))
            elif report.record.state == "closed":
                done.append(await self._deliver(report))
        return done

    async def _deliver(self, report: Report) -> Report:
        record = report.record
        if report.fields is None:  # cannot happen: erased only when delivered
            raise ReportError(f"report {record.reference} has no contact left to answer")
        receipt = None
        if record.outcome == PURGED and record.job_id:
            job = await self._gate.purger.find(job_id=record.job_id)
            if job is None:
                raise ReportError(f"the purge job of report {record.reference} is not in the journal")
            receipt = self._gate.purger.receipt(job)
        delivery = Delivery(record.reference, report.fields.contact, record.outcome or "", receipt)
        error = None
        if not self._callbacks:
            error = "no on_closed callback is registered"
        for callback in self._callbacks:
            try:
                result = callback(delivery)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # the app's mail failed: keep the contact, try again later
                error = f"the on_closed callback failed with {type(exc).__name__}"
                break
        attempts = record.attempts + 1
        if error is not None:
            _log.warning("report %s: answer not delivered (%s)", record.reference, error)
            record = await self._move(record, "closed", attempts=attempts, error=error)
            return Report(record, report.fields)
        now = datetime.now(UTC)
        # Delivered: the account, the contact and the free text are erased for good.
        record = await self._move(
            record, "closed", state="delivered", sealed=None, delivered_at=now, attempts=attempts, error=None
        )
        _log.info("report %s answered", record.reference)
        return Report(record, None)
