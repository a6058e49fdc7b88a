"""``agegate purge``: the support staff's command that purges a reported child's account.

One account (``--subject``), a batch (``--subjects-from``, :mod:`agegate.cli.batch`), the
unfinished jobs (``--resume``), the coverage check (``--coverage``, :mod:`agegate.cli.coverage`)
or clearing deleted rows from the files (``--vacuum``, :mod:`agegate.cli.vacuum`). The app is
found with ``--app`` (:mod:`agegate.cli.app`); it builds its gate with its keys (usually
``Keyring.from_env()``), so ``AGEGATE_SECRET_KEYS`` must be set.

Nothing printed here holds the account id or an identifier; errors are one readable line (and,
with ``--json``, also a JSON object ``{"error": ..., "exit": ...}`` on stdout). ``--subject -``
and ``--identifier KIND=-`` read the value from stdin, or from a prompt that does not echo, so
that it stays out of shell history and the process list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..errors import AgeGateError, AppNotFound, ConfigurationError, JobNotFound, NoMatch
from ..gate import AgeGate
from ..purge import PurgeEvent, PurgeReport
from ..reports import Report
from .app import (
    EXIT_FAILURE,
    EXIT_OK,
    json_errors,
    load_gate,
    run,
    save,
    usage,
    when,
)
from .coverage import run_coverage
from .reports import answer_line
from .safety import Started, interrupted, no_match_message, resume_command

__all__ = ["AppNotFound", "JobNotFound", "NoMatch", "load_gate", "register"]
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)


def _identifiers(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        kind, sep, value = item.partition("=")
        kind = kind.strip().lower()
        if not sep or _KIND.fullmatch(kind) is None or not value.strip():
            raise usage("--identifier takes KIND=VALUE, for example --identifier email=someone@example.org")
        if kind in out:
            raise usage(f"--identifier {kind}=… is given twice; run the purge once per {kind}")
        out[kind] = _secret(f"the {kind} to block") if value.strip() == "-" else value.strip()
    return out


def _secret(what: str) -> str:
    """A value given as ``-``: one line of stdin, or a no-echo prompt on a terminal."""
    if sys.stdin.isatty():
        try:
            value = getpass.getpass(f"Enter {what} (not shown): ")
        except EOFError:
            value = ""
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value.strip():
        raise usage(f"{what} was given as '-' but none was read from stdin")
    return value


class _Progress:
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


def _report_json(report: PurgeReport, receipt: str | None = None) -> dict[str, Any]:
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


def _print_report(report: PurgeReport, gate: AgeGate) -> None:
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


async def _write_receipt(gate: AgeGate, job_id: str, path: str) -> str:
    found = await gate.purger.find(job_id=job_id)
    if found is None:
        raise JobNotFound(f"purge job {job_id} is not in the journal")
    save(path, gate.purger.receipt(found))
    return path


async def _confirm(gate: AgeGate, args: argparse.Namespace, identifiers: dict[str, str]) -> bool:
    preview = await gate.purger.purge(
        args.subject, ticket=args.ticket, operator=args.operator, identifiers=identifiers, dry_run=True
    )
    if preview.already_done:
        return True
    counts = ", ".join(f"{name} ({count})" for name, count in preview.deleted.items())
    counts += "".join(f", {name} (?)" for name in preview.uncounted)
    print(
        f"About to purge the account for ticket {args.ticket}: freeze it, delete its data from "
        f"{counts or 'no handlers'}, and block {preview.identifiers_blocked} identifier(s). "
        "This cannot be undone.",
        file=sys.stderr,
    )
    print("Type 'yes' to continue: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("yes", "y")


#: The flags each mode of ``agegate purge`` takes (besides --app and --json); any other flag
#: given is refused rather than ignored: a --dry-run silently dropped from a --resume would
#: really delete.
_MODE_FLAGS = {
    "--resume": set(),
    "--coverage": set(),
    "--vacuum": set(),
    "--subjects-from": {"--ticket", "--operator", "--dry-run", "--yes", "--allow-no-match", "--concurrency"},
    None: {"--subject", "--ticket", "--operator", "--identifier", "--dry-run", "--receipt", "--yes",
           "--allow-no-match", "--report"},
}  # fmt: skip


def _given(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The modes and the other flags given on the command line."""
    modes = [
        flag
        for flag, on in (
            ("--resume", args.resume),
            ("--coverage", args.coverage),
            ("--vacuum", args.vacuum),
            ("--subjects-from", args.subjects_from is not None),
        )
        if on
    ]
    flags = [
        flag
        for flag, on in (
            ("--subject", args.subject is not None),
            ("--ticket", args.ticket is not None),
            ("--operator", args.operator is not None),
            ("--identifier", bool(args.identifier)),
            ("--dry-run", args.dry_run),
            ("--receipt", args.receipt is not None),
            ("--yes", args.yes),
            ("--allow-no-match", args.allow_no_match),
            ("--concurrency", args.concurrency is not None),
            ("--report", args.report is not None),
        )
        if on
    ]
    return modes, flags


def _purge(args: argparse.Namespace) -> int:
    modes, flags = _given(args)
    if len(modes) > 1:
        raise usage(f"{' and '.join(modes)} cannot be used together")
    mode = modes[0] if modes else None
    unfit = [flag for flag in flags if flag not in _MODE_FLAGS[mode]]
    if unfit:
        raise usage(f"{mode or 'a purge of one account'} does not take {', '.join(unfit)}")
    if mode == "--subjects-from":
        from .batch import run_batch

        return run_batch(args)
    if args.report is not None and args.ticket is not None:
        raise usage("--report gives the purge its ticket (the report's reference): drop --ticket")
    if mode is None:
        ticket = args.report if args.report is not None else args.ticket
        needed = (("--subject", args.subject), ("--ticket", ticket), ("--operator", args.operator))
        missing = [flag for flag, value in needed if not value]
        if missing:
            raise usage(
                f"a purge needs {', '.join(missing)} (or use --subjects-from, --resume or --coverage)"
            )
    if args.subject == "-":
        args.subject = _secret("the account id")
    identifiers = _identifiers(args.identifier)
    gate = load_gate(args.app)
    if mode == "--coverage":
        return run_coverage(gate, args)
    if mode == "--vacuum":
        from .vacuum import run_vacuum

        return run_vacuum(gate, args)
    if mode == "--resume":
        return _resume(gate, args)
    answered: list[Report] = []
    if args.report is not None:
        # The report's reference is the purge's ticket (so the job is linked to it), and its
        # account, when it is an identifier a purge blocks, is blocked too.
        found = run(gate, lambda: gate.reports.get(args.report))
        args.report = args.ticket = found.reference
        identifiers = {**gate.reports.identifiers(found), **identifiers}
    receipt = str(Path(args.receipt).resolve()) if args.receipt else None
    try:
        gate.purger.check_request(args.subject, args.ticket, args.operator, identifiers, receipt=receipt)
    except ConfigurationError as exc:
        raise usage(str(exc)) from None
    if not args.dry_run and not args.yes and not sys.stdin.isatty():
        raise usage("refusing to purge without confirmation: pass --yes (stdin is not a terminal)")
    started = Started()

    async def work() -> tuple[PurgeReport | None, str | None]:
        if not args.allow_no_match:
            match = await gate.purger.find_match(args.subject)
            if not match.matched:
                raise NoMatch(no_match_message(match.uncounted))
        if not args.dry_run and not args.yes and not await _confirm(gate, args, identifiers):
            return None, None
        stops = [
            gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json)),
            gate.purger.listen(started),
        ]
        started.began = not args.dry_run
        if args.report is not None and not args.dry_run:
            await gate.reports.begin_purge(args.report)
        try:
            report = await gate.purger.purge(
                args.subject,
                ticket=args.ticket,
                operator=args.operator,
                identifiers=identifiers,
                dry_run=args.dry_run,
                receipt=receipt,
            )
        finally:
            for stop in stops:
                stop()
        if args.report is not None and report.state == "done":
            job = await gate.purger.find(job_id=report.job_id)
            if job is not None:
                answered.append(await gate.reports.finish_purge(args.report, job))
        if receipt and report.state == "done":
            return report, await _write_receipt(gate, report.job_id, receipt)
        return report, None

    try:
        report, written = run(gate, work)
    except KeyboardInterrupt:
        raise interrupted(args, started.job_id, began=started.began) from None
    if report is None:
        print("Not confirmed: nothing was done.", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        shown = _report_json(report, written)
        for closed in answered:  # the report this purge came from, and whether it was answered
            shown["report"] = {"reference": closed.reference, "state": closed.record.state,
                               "delivery_error": closed.record.error}  # fmt: skip
        print(json.dumps(shown))
    else:
        _print_report(report, gate)
        if written:
            print(f"Signed receipt written to {written}: send it to the person who reported the account.")
        for closed in answered:
            print(answer_line(closed))
    if any(closed.record.state != "delivered" for closed in answered):
        return EXIT_FAILURE  # the answer must still reach the reporter: `agegate reports deliver`
    # Data left behind by handlers that did not run is a failure a script must notice.
    return EXIT_FAILURE if report.not_run and report.state != "dry_run" else EXIT_OK


def _resume(gate: AgeGate, args: argparse.Namespace) -> int:
    stop = gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json))

    unwritten: dict[str, str] = {}

    async def work() -> tuple[list[PurgeReport], dict[str, str]]:
        reports = await gate.purger.resume()
        # A receipt asked for when the job began is part of the job: written now it is done.
        written: dict[str, str] = {}
        for report in reports:
            if report.state == "done" and report.receipt:
                try:
                    written[report.job_id] = await _write_receipt(gate, report.job_id, report.receipt)
                except AgeGateError as exc:
                    unwritten[report.job_id] = str(exc)
        return reports, written

    try:
        reports, written = run(gate, work)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"run it again to finish: {resume_command(args)}") from None
    finally:
        stop()
    if args.json:
        print(json.dumps([_report_json(r, written.get(r.job_id)) for r in reports]))
    elif not reports:
        print("Nothing to resume: every purge job has finished.")
    for report in reports:
        if args.json:
            break
        if report.state == "failed":
            print(f"Job {report.job_id} (ticket {report.ticket}) failed again: {report.error}")
        else:
            _print_report(report, gate)
            if report.job_id in written:
                print(f"Signed receipt written to {written[report.job_id]} (asked for when the purge began).")
    for job_id, error in unwritten.items():
        print(
            f"agegate: job {job_id} is done, but its receipt was not written ({error}); "
            f"write it with `agegate receipt issue --job {job_id} -o FILE`",
            file=sys.stderr,
        )
    failed = any(r.state == "failed" for r in reports) or bool(unwritten)
    return EXIT_FAILURE if failed else EXIT_OK


def register(sub: Any) -> None:
    """Add ``purge`` to the ``agegate`` parser."""
    app_help = "the app's gate as MODULE:ATTR (default: $AGEGATE_APP)"
    purge = sub.add_parser(
        "purge",
        help="delete a reported child's account data everywhere the app registered",
        description="Freeze an account, delete its data with every registered handler, block its "
        "identifiers, and journal it all. Exit 0 done (or already done), 1 failure, 2 bad usage.",
    )
    purge.add_argument("--app", help=app_help)
    purge.add_argument(
        "--subject", help="the account id to purge (never stored or printed); '-' reads it from stdin"
    )
    purge.add_argument("--ticket", help="the support ticket number (kept in the audit log)")
    purge.add_argument("--operator", help="who runs the purge (kept in the audit log)")
    purge.add_argument(
        "--identifier",
        action="append",
        metavar="KIND=VALUE",
        help="an identifier to block from signing up again: email=, phone= or username= (repeatable); "
        "KIND=- reads the value from stdin",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    purge.add_argument("--json", action="store_true", help="print JSON")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--receipt", metavar="FILE", help="write the signed deletion receipt to FILE")
    purge.add_argument(
        "--report",
        metavar="REF",
        help="purge the account of report REF: its reference is the ticket, its account is blocked, "
        "and the report is closed and answered with the receipt (see `agegate reports`)",
    )
    purge.add_argument("--resume", action="store_true", help="finish every interrupted or failed purge")
    purge.add_argument(
        "--coverage",
        action="store_true",
        help="list personal-looking columns no handler purges (exit 1 if any, 2 if no database is known)",
    )
    purge.add_argument(
        "--allow-no-match",
        action="store_true",
        help="purge an account id even though no handler and no record of the gate matches it",
    )
    purge.add_argument(
        "--subjects-from",
        metavar="FILE",
        help="purge every account listed in FILE ('-' for stdin): one 'ID [ticket=T] [email=… …]' per line",
    )
    purge.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="with --subjects-from: how many accounts are purged at once (default 4)",
    )
    purge.add_argument(
        "--vacuum",
        action="store_true",
        help="clear deleted rows from the databases' files (SQLite VACUUM, PostgreSQL VACUUM)",
    )
    purge.set_defaults(func=json_errors(_purge))
