"""``agegate purge --subject``: purge one account, after a preview and a confirmation.

``--subject -`` and ``--identifier KIND=-`` read the value from stdin, or from a prompt that
does not echo, so that it stays out of shell history and the process list. ``--report REF``
purges the account of a report from a parent and answers the report.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigurationError, InvalidInput, NoMatch
from ..gate import AgeGate
from ..purge import PurgeReport
from ..reports import Report
from .app import EXIT_FAILURE, EXIT_OK, run, usage
from .output import Progress, print_report, report_json, write_receipt
from .reports import answer_line
from .safety import Started, confirmed, interrupted, no_match_message

__all__ = ["purge_one", "read_identifiers", "read_secret"]
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)


def read_identifiers(items: Sequence[str] | None) -> dict[str, str]:
    """The ``--identifier KIND=VALUE`` options as a dict (``KIND=-`` reads the value)."""
    out: dict[str, str] = {}
    for item in items or ():
        kind, sep, value = item.partition("=")
        kind = kind.strip().lower()
        if not sep or _KIND.fullmatch(kind) is None or not value.strip():
            raise usage("--identifier takes KIND=VALUE, for example --identifier email=someone@example.org")
        if kind in out:
            raise usage(f"--identifier {kind}=… is given twice; run the purge once per {kind}")
        out[kind] = read_secret(f"the {kind} to block") if value.strip() == "-" else value.strip()
    return out


def read_secret(what: str) -> str:
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


async def _confirm(gate: AgeGate, args: argparse.Namespace, identifiers: dict[str, str]) -> bool:
    preview = await gate.purger.purge(
        args.subject, ticket=args.ticket, operator=args.operator, identifiers=identifiers, dry_run=True
    )
    if preview.already_done:
        return True
    counts = ", ".join(f"{name} ({count})" for name, count in preview.deleted.items())
    counts += "".join(f", {name} (?)" for name in preview.uncounted)
    return confirmed(
        f"About to purge the account for ticket {args.ticket}: freeze it, delete its data from "
        f"{counts or 'no handlers'}, and block {preview.identifiers_blocked} identifier(s). "
        "This cannot be undone."
    )


def purge_one(gate: AgeGate, args: argparse.Namespace, identifiers: dict[str, str]) -> int:
    """Purge the account ``--subject`` (or ``--report``'s) and print how it went; returns the
    exit status."""
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
    except (ConfigurationError, InvalidInput) as exc:
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
            gate.purger.listen(Progress(sys.stderr, live=sys.stderr.isatty() and not args.json)),
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
            return report, await write_receipt(gate, report.job_id, receipt)
        return report, None

    try:
        report, written = run(gate, work)
    except KeyboardInterrupt:
        raise interrupted(args, started.job_id, began=started.began) from None
    if report is None:
        print("Not confirmed: nothing was done.", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        shown = report_json(report, written)
        for closed in answered:  # the report this purge came from, and whether it was answered
            shown["report"] = {"reference": closed.reference, "state": closed.record.state,
                               "delivery_error": closed.record.error}  # fmt: skip
        print(json.dumps(shown))
    else:
        print_report(report, gate)
        if written:
            print(f"Signed receipt written to {written}: send it to the person who reported the account.")
        for closed in answered:
            print(answer_line(closed))
    if any(closed.record.state != "delivered" for closed in answered):
        return EXIT_FAILURE  # the answer must still reach the reporter: `agegate reports deliver`
    # Data left behind by handlers that did not run is a failure a script must notice.
    return EXIT_FAILURE if report.not_run and report.state != "dry_run" else EXIT_OK
