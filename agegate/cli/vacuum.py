"""``agegate purge --vacuum``: clear deleted rows from the app's databases' files."""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from ..gate import AgeGate
from ..purge.vacuum import Vacuumed, vacuum
from .app import run

__all__ = ["run_vacuum"]


def run_vacuum(gate: AgeGate, args: argparse.Namespace) -> int:
    """Vacuum every database the purge handlers name; returns the exit status."""

    async def work() -> list[Vacuumed]:
        covered = await gate.purger.covered_tables()
        if not covered:
            raise UsageError(
                "no SQL database is known to the purge: nothing to vacuum (see docs/support-runbook.md)"
            )
        return await vacuum(covered)

    done = run(gate, work)
    if args.json:
        print(json.dumps([{"database": v.database, "tables": list(v.tables) or None} for v in done]))
        return 0
    for v in done:
        what = ", ".join(v.tables) if v.tables else "the whole file"
        print(f"Vacuumed {v.database}: {what}.")
    print("Deleted rows are gone from these databases' files; backups still hold them until they expire.")
    return 0
