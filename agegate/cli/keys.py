"""``agegate keygen`` and ``agegate keys public|status``: a new key, the public key that verifies
deletion receipts, and which key ids the app's store needs, and until when.

``keys status`` exits 0 when the app's keyring fits its store, 1 when the app would refuse to
open it (the reason is printed, naming the key ids), 2 for bad usage. Nothing printed holds key
material or the store's URL (which may hold a password).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from ..errors import KeyringError, UsageError
from ..keycheck import KeyStatus, mismatch
from ..keys import Keyring
from ..purge.receipts import public_key_text
from .app import APP_HELP, EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run

__all__ = ["register", "register_keygen"]


def _keygen(args: argparse.Namespace) -> int:
    try:
        ring = Keyring.generate(args.kid)
    except KeyringError as exc:
        raise UsageError(f"--kid: {exc}") from None
    print(ring.to_string())
    return EXIT_OK


def _keys_public(args: argparse.Namespace) -> int:
    keys = Keyring.from_env()
    if args.all:
        for kid in keys.kids:
            print(f"{kid}:{public_key_text(keys, kid)}")
    else:
        print(public_key_text(keys))
    return EXIT_OK


def register_keygen(sub: Any) -> None:
    """Add ``keygen`` to the ``agegate`` parser."""
    keygen = sub.add_parser("keygen", help="print a new key for AGEGATE_SECRET_KEYS")
    keygen.add_argument("--kid", help="the key id (default: a random one)")
    keygen.set_defaults(func=_keygen)


def register(sub: Any) -> None:
    """Add ``keys public`` and ``keys status`` to the ``agegate`` parser."""
    keys = sub.add_parser("keys", help="key utilities")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    public = keys_sub.add_parser("public", help="print the public key that verifies deletion receipts")
    public.add_argument("--all", action="store_true", help="one kid:key line per listed key (rotation)")
    public.set_defaults(func=_keys_public)
    status = keys_sub.add_parser(
        "status",
        help="each key id of the app's store: how many records need it, and until when",
        description="Show each key id the app's keyring lists or its store knows, how many records "
        "need it and until when. Exit 0 when the keyring fits the store, 1 when the app would "
        "refuse it, 2 for bad usage.",
    )
    status.add_argument("--app", help=APP_HELP)
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
