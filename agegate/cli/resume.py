"""``agegate purge --resume``: finish every interrupted or failed purge job, and write the
receipts asked for when they began."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import AgeGateError
from ..gate import AgeGate
from ..purge import PurgeReport
from .app import EXIT_FAILURE, EXIT_OK, run
from .output import Progress, print_report, report_json, write_receipt
from .safety import resume_command

__all__ = ["run_resume"]


def run_resume(gate: AgeGate, args: argparse.Namespace) -> int:
    """Finish the unfinished purge jobs and print how each ended; returns the exit status."""
    stop = gate.purger.listen(Progress(sys.stderr, live=sys.stderr.isatty() and not args.json))

    unwritten: dict[str, str] = {}

    async def work() -> tuple[list[PurgeReport], dict[str, str]]:
        reports = await gate.purger.resume()
        # A receipt asked for when the job began is part of the job: written now it is done.
        written: dict[str, str] = {}
        for report in reports:
            if report.state == "done" and report.receipt:
                try:
                    written[report.job_id] = await write_receipt(gate, report.job_id, report.receipt)
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
        print(json.dumps([report_json(r, written.get(r.job_id)) for r in reports]))
    elif not reports:
        print("Nothing to resume: every purge job has finished.")
    for report in reports:
        if args.json:
            break
        if report.state == "failed":
            print(f"Job {report.job_id} (ticket {report.ticket}) failed again: {report.error}")
        else:
            print_report(report, gate)
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
