"""``agegate purge --coverage``: the coverage check, for people and for CI.

Exit status 0 when every personal-looking column is purged or declared, 1 when one is not,
2 when no SQL database is known at all (a check that looked at nothing must not pass).
"""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from ..gate import AgeGate
from ..purge.coverage import NoDatabaseKnown, report_json
from .app import EXIT_FAILURE, EXIT_OK, run

__all__ = ["run_coverage"]


def run_coverage(gate: AgeGate, args: argparse.Namespace) -> int:
    """Run the coverage check and print its report (``--json``: as JSON); returns the exit status."""
    try:
        report = run(gate, gate.purger.coverage_report)
    except NoDatabaseKnown as exc:
        # A CI job must not pass on a check that looked at nothing: bad usage, exit 2.
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(report_json(report)))
        return EXIT_FAILURE if report.uncovered else EXIT_OK
    tables = report.tables_checked
    for exemption in report.exemptions:
        why = f": {exemption.reason}" if exemption.reason else ""
        if exemption.columns:
            print(f"Declared not personal: {exemption.table}.{', '.join(exemption.columns)}{why}")
        else:
            print(f"Declared not the account holder's data: {exemption.table}{why or ' (no reason given)'}")
    if not report.uncovered:
        print(f"Covered: every personal-looking column in {tables} table(s) is purged or declared.")
        return EXIT_OK
    grouped = report.by_table()
    print(
        "Not covered by any purge handler (add a handler, or declare the table or column with "
        "gate.purger.exempt):"
    )
    for (database, table), found in grouped.items():
        parts = report.partitions.get((database, table), 0)
        shown = f"{table} (with {parts} partition(s))" if parts else table
        print(f"  {database}  {shown}")
        for u in found:
            print(f"      {u.column:<28} looks like {u.kind}")
    print(f"{len(report.uncovered)} column(s) in {len(grouped)} of {tables} table(s) not covered.")
    return EXIT_FAILURE
