"""``agegate keys status``: which key ids the app's store needs, and until when.

Exit status 0 when the app's keyring fits its store, 1 when the app would refuse to open it
(the reason is printed, naming the key ids), 2 for bad usage. Nothing printed holds key material
or the store's URL (which may hold a password).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from ..keycheck import KeyStatus, mismatch
from .app import EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run


def register(keys_sub: Any, app_help: str) -> None:
    """Add ``status`` to the ``agegate keys`` parser."""
    status = keys_sub.add_parser(
        "status",
        help="each key id of the app's store: how many records need it, and until when",
        description="Show each key id the app's keyring lists or its store knows, how many records "
        "need it and until when. Exit 0 when the keyring fits the store, 1 when the app would "
        "refuse it, 2 for bad usage.",
    )
    status.add_argument("--app", help=app_help)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=json_errors(_status))


def _status(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    statuses = run(gate, gate.key_status)
    problem = mismatch(gate.keys, statuses)
    if args.json:
        print(
            json.dumps(
                {
                    "fits": problem is None,
                    "error": None if problem is None else str(problem),
                    "keys": [s.to_json() for s in statuses],
                }
            )
        )
    else:
        _print_table(statuses)
        if problem is None:
            print("The keyring fits the store.")
        else:
            print(f"REFUSED: {problem}")
    return EXIT_OK if problem is None else EXIT_FAILURE


def _state(status: KeyStatus) -> str:
    if status.wrong_key:
        return "WRONG KEY for this id"
    if status.active:
        return "active"
    if status.listed:
        return "listed" if status.records else "listed, no longer needed: can be dropped"
    return "NOT LISTED, still needed" if status.records else "not listed, not needed"


def _until(status: KeyStatus) -> str:
    until = status.needed_until
    if isinstance(until, datetime):
        return until.strftime("%Y-%m-%d %H:%M UTC")
    return until or "-"


def _print_table(statuses: list[KeyStatus]) -> None:
    header = ("KEY ID", "RECORDS", "ATTESTATIONS", "BLOCKS", "JOBS", "REPORTS", "NEEDED UNTIL", "STATE")
    rows = [
        (
            s.kid,
            str(s.records),
            str(s.attestations),
            str(s.blocks),
            str(s.jobs),
            str(s.reports),
            _until(s),
            _state(s),
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
