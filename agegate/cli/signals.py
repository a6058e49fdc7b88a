"""``agegate signals list|clear``: the accounts an under-age age signal flagged (actual knowledge),
for support to purge.

``list`` prints each flagged account's reference, when it was flagged and its account id (which
``agegate purge --subject`` needs); accounts whose purge is done drop off the list. ``list
--json`` prints the same as JSON. ``clear REF`` removes a flag that support handled another way
(the account stays recorded under age). Exit status 0, 1 on failure, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .app import APP_HELP, EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run, when

__all__ = ["register"]


def _list(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    flags = run(gate, gate.knowledge.flags)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "ref": f.ref,
                        "subject": f.subject,
                        "flagged_at": f.flagged_at.isoformat() if f.flagged_at else None,
                    }
                    for f in flags
                ]
            )
        )
        return EXIT_OK
    if not flags:
        print("No accounts flagged by an age signal.")
        return EXIT_OK
    print(f"{'REF':<13} {'FLAGGED':<21} ACCOUNT")
    for f in flags:
        account = f.subject if f.subject is not None else "(sealed under a key no longer listed)"
        print(f"{f.ref:<13} {when(f.flagged_at):<21} {account}")
    print(f"{len(flags)} account(s) to purge: agegate purge --app … --subject ID --ticket … --operator …")
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    cleared = run(gate, lambda: gate.knowledge.clear(args.ref))
    if args.json:
        print(json.dumps({"ref": args.ref, "cleared": cleared}))
    else:
        print(f"Cleared flag {args.ref}." if cleared else f"No flag {args.ref}.")
    return EXIT_OK if cleared else EXIT_FAILURE


def register(sub: Any) -> None:
    """Add ``signals`` to the ``agegate`` parser."""
    signals = sub.add_parser("signals", help="accounts an under-age age signal flagged, to purge")
    signals_sub = signals.add_subparsers(dest="signals_command", required=True, metavar="COMMAND")
    listing = signals_sub.add_parser("list", help="the flagged accounts not yet purged, oldest first")
    listing.add_argument("--app", help=APP_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=json_errors(_list))
    clear = signals_sub.add_parser("clear", help="remove a flag handled another way (stays blocked)")
    clear.add_argument("ref", metavar="REF", help="the flag's reference, as listed")
    clear.add_argument("--app", help=APP_HELP)
    clear.add_argument("--json", action="store_true", help="print JSON")
    clear.set_defaults(func=json_errors(_clear))
