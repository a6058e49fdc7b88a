"""How ``agegate purge`` shows a purge: its steps as they run, its report as text or JSON, and
its signed receipt written to a file. Nothing shown holds the account id or an identifier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from ..errors import JobNotFound
from ..gate import AgeGate
from ..purge import PurgeEvent, PurgeReport
from .app import save, when

__all__ = ["Progress", "print_report", "report_json", "write_receipt"]


class Progress:
    """Shows each step on a terminal as it runs; ``wait`` notices go out even when not a tty."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out, self.live = out, live

    def __call__(self, event: PurgeEvent) -> None:
        if event.kind == "wait":
            print(
                f"waiting: another process is running purge job {event.job_id}; "
                "its result will be reported when it is done",
                file=self.out,
                flush=True,
            )
        elif not self.live:
            return
        elif event.kind == "start":
            print(f"  {event.step:<28} running…", end="", file=self.out, flush=True)
        elif event.kind == "done":
            print(f"\r  {event.step:<28} {event.count:<10}", file=self.out, flush=True)
        elif event.kind == "skip":
            print(f"  {event.step:<28} {event.count:<10} (done before)", file=self.out, flush=True)


def report_json(report: PurgeReport, receipt: str | None = None) -> dict[str, Any]:
    """A purge report as ``--json`` prints it (``receipt``: where its receipt was written)."""
    return {
        "job_id": report.job_id,
        "state": report.state,
        "already_done": report.already_done,
        "ticket": report.ticket,
        "deleted": report.deleted,
        "identifiers_blocked": report.identifiers_blocked,
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "uncounted": list(report.uncounted),
        "error": report.error,
        "not_run": list(report.not_run),
        "receipt": receipt,
        "plan": [
            {"handler": s.handler, "table": s.table, "path": s.path, "action": s.action, "count": s.count}
            for s in report.plan
        ],
    }


def print_report(report: PurgeReport, gate: AgeGate) -> None:
    """A purge report as a person reads it: what was (or would be) deleted and blocked."""
    if report.state == "dry_run":
        print(f"Dry run for ticket {report.ticket}: nothing was deleted, frozen or blocked.")
        if report.already_done:
            print(f"This account was already purged (job {report.job_id}).")
        print("A purge would delete:")
    elif report.already_done:
        print(
            f"Already done: this account was purged by job {report.job_id} (ticket {report.ticket}, "
            f"finished {when(report.finished_at)}). Nothing was deleted now."
        )
    else:
        print(f"Purge done for ticket {report.ticket} (job {report.job_id}), {when(report.finished_at)}.")
        print("The account is frozen (under_age) everywhere. Deleted:")
    if not report.deleted and not report.uncounted and not report.not_run:
        print(
            "  nothing: the app registers no purge handler, so only agegate's own records are "
            "frozen (see docs/purge.md; `agegate purge --coverage` checks what is left)"
        )
    for name, count in report.deleted.items():
        print(f"  {name:<28} {count}")
    for name in report.uncounted:
        print(f"  {name:<28} ? (this handler cannot count in advance)")
    if report.plan:
        print("Plan of the relational handlers (table, reached by, action, rows):")
        for step in report.plan:
            print(f"  {step.handler}: {step.table:<24} {step.path}  [{step.action}] {step.count}")
    if report.not_run:
        print(
            f"  NOT RUN yet: {', '.join(report.not_run)}: registered after this account's purge "
            "finished; run the purge again (without --dry-run) to delete the account's data there."
        )
    if report.identifiers_blocked:
        verb = "would be" if report.state == "dry_run" else "are"
        until = (report.finished_at or datetime.now(UTC)) + gate.identifier_block
        print(
            f"  {report.identifiers_blocked} identifier(s) {verb} blocked from signing up again "
            f"until about {until:%Y-%m-%d}."
        )


async def write_receipt(gate: AgeGate, job_id: str, path: str) -> str:
    """Write the signed receipt of a finished job to ``path``; returns ``path``."""
    found = await gate.purger.find(job_id=job_id)
    if found is None:
        raise JobNotFound(f"purge job {job_id} is not in the journal")
    save(path, gate.purger.receipt(found))
    return path
