"""``agegate reports list|show|close|deliver``: support's commands for reports from parents.

Only ``show`` prints what a reporter typed (the account, the contact, the free text): support
needs it to find the account. ``list`` prints references, times and states only. ``list
--overdue`` exits 1 when a report is past its deadline without an answer, so that a scheduled
job can alert. A purge from a report is ``agegate purge --report REF --subject ID …``
(:mod:`agegate.cli.purge`).
"""

from __future__ import annotations

import argparse
import json
import shlex
from datetime import UTC, datetime
from typing import Any

from ..reports import CLOSE_REASONS, Report
from ..stores import ReportRecord
from .app import APP_HELP, EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run, when

__all__ = ["answer_line", "register"]


def _record_json(record: ReportRecord, now: datetime) -> dict[str, Any]:
    return {
        "reference": record.reference,
        "state": record.state,
        "received_at": record.received_at.isoformat(),
        "due_at": record.due_at.isoformat(),
        "overdue": record.state != "delivered" and now > record.due_at,
        "outcome": record.outcome,
        "job_id": record.job_id,
        "closed_at": record.closed_at.isoformat() if record.closed_at else None,
        "delivered_at": record.delivered_at.isoformat() if record.delivered_at else None,
        "delivery_attempts": record.attempts,
        "delivery_error": record.error,
    }


def answer_line(report: Report) -> str:
    """What happened to the answer of a closed report, in one line."""
    record = report.record
    if record.state == "delivered":
        return f"Report {record.reference} is closed ({record.outcome}); the answer was delivered."
    return (
        f"Report {record.reference} is closed ({record.outcome}), but the answer was NOT delivered "
        f"({record.error}); run `agegate reports deliver` once that is mended."
    )


def _list(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    records = run(gate, gate.reports.records)
    now = datetime.now(UTC)
    if args.open:
        records = [r for r in records if r.state in ("open", "purging")]
    overdue = [r for r in records if r.state != "delivered" and now > r.due_at]
    if args.overdue:
        records = overdue
    if args.json:
        print(json.dumps([_record_json(r, now) for r in records]))
    elif not records:
        print("No reports." if not (args.open or args.overdue) else "No such reports.")
    else:
        print(f"{'REFERENCE':<17} {'RECEIVED':<21} {'DUE':<21} {'STATE':<10} OUTCOME / FLAGS")
        for r in records:
            flags = [r.outcome or ""]
            if r in overdue:
                flags.append("OVERDUE")
            if r.state == "closed":
                flags.append(f"answer not delivered ({r.attempts} tries)")
            line = f"{r.reference:<17} {when(r.received_at):<21} {when(r.due_at):<21} {r.state:<10} "
            print(line + " ".join(f for f in flags if f))
    # Only --overdue makes overdue reports a failure: a scheduled job alerts on it.
    return EXIT_FAILURE if args.overdue and overdue else EXIT_OK


def _show(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    report = run(gate, lambda: gate.reports.get(args.reference))
    now = datetime.now(UTC)
    fields = report.fields
    if args.json:
        shown = _record_json(report.record, now)
        shown["report"] = (
            {"account": fields.account, "account_kind": fields.kind, "relation": fields.relation,
             "contact": fields.contact, "details": fields.details}
            if fields else None
        )  # fmt: skip
        print(json.dumps(shown))
        return EXIT_OK
    r = report.record
    print(f"Report {r.reference}: {r.state}{' (OVERDUE)' if report.overdue(now) else ''}")
    print(f"  received   {when(r.received_at)}")
    print(f"  answer by  {when(r.due_at)}")
    if fields is not None:
        print(f"  account    {fields.account} ({fields.kind})")
        print(f"  relation   {fields.relation}")
        print(f"  contact    {fields.contact}")
        print(f"  details    {fields.details or '-'}")
    else:
        print("  (answered: the account, the contact and the text were erased)")
    if r.outcome:
        job = f" (purge job {r.job_id})" if r.job_id else ""
        print(f"  outcome    {r.outcome}{job}, closed {when(r.closed_at)}")
    if r.state == "closed":
        print(f"  answer     not delivered yet ({r.attempts} tries; {r.error})")
    elif r.delivered_at:
        print(f"  answer     delivered {when(r.delivered_at)}")
    if r.state == "open":
        app = f" --app {shlex.quote(args.app)}" if args.app else ""  # else AGEGATE_APP names it
        print(
            f"Purge it: agegate purge{app} --report {r.reference} --subject ACCOUNT_ID --operator NAME; "
            f"or close it: agegate reports close{app} {r.reference} --reason {'|'.join(CLOSE_REASONS)}"
        )
    return EXIT_OK


def _close(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    report = run(gate, lambda: gate.reports.close(args.reference, reason=args.reason))
    if args.json:
        print(json.dumps(_record_json(report.record, datetime.now(UTC))))
    else:
        print(answer_line(report))
    return EXIT_OK if report.record.state == "delivered" else EXIT_FAILURE


def _deliver(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    reports = run(gate, lambda: gate.reports.deliver(args.reference))
    if args.json:
        now = datetime.now(UTC)
        print(json.dumps([_record_json(r.record, now) for r in reports]))
    elif not reports:
        print("Nothing to deliver: every closed report has been answered.")
    for report in reports:
        if not args.json:
            print(answer_line(report))
    return EXIT_FAILURE if any(r.record.state != "delivered" for r in reports) else EXIT_OK


def register(sub: Any) -> None:
    """Add ``reports`` to the ``agegate`` parser."""
    reports = sub.add_parser(
        "reports",
        help="reports from parents that a child has an account",
        description="List, read, close and answer reports sent through the report form.",
    )
    commands = reports.add_subparsers(dest="reports_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list reports (exit 1 with --overdue if any is overdue)")
    listing.add_argument("--open", action="store_true", help="only reports not yet decided")
    listing.add_argument(
        "--overdue", action="store_true", help="only reports past their deadline; exit 1 if any"
    )
    show = commands.add_parser("show", help="show one report, with what the reporter typed")
    show.add_argument("reference", help="the report's reference, R-XXXX-XXXX-XXXX")
    close = commands.add_parser("close", help="close a report that leads to no purge, and answer it")
    close.add_argument("reference", help="the report's reference")
    close.add_argument("--reason", required=True, choices=CLOSE_REASONS, help="why no purge (kept)")
    deliver = commands.add_parser("deliver", help="answer closed reports whose answer was not delivered")
    deliver.add_argument("reference", nargs="?", help="only this report")
    for command, func in ((listing, _list), (show, _show), (close, _close), (deliver, _deliver)):
        command.add_argument("--app", help=APP_HELP)
        command.add_argument("--json", action="store_true", help="print JSON")
        command.set_defaults(func=json_errors(func))
