"""``agegate purge``: the support staff's command that purges a reported child's account.

One account (``--subject``, :mod:`agegate.cli.single`), a batch (``--subjects-from``,
:mod:`agegate.cli.batch`), the unfinished jobs (``--resume``, :mod:`agegate.cli.resume`), the
coverage check (``--coverage``, :mod:`agegate.cli.coverage`) or clearing deleted rows from the
files (``--vacuum``, :mod:`agegate.cli.vacuum`). The app is found with ``--app``
(:mod:`agegate.cli.app`); it builds its gate with its keys (usually ``Keyring.from_env()``), so
``AGEGATE_SECRET_KEYS`` must be set.

Nothing printed here holds the account id or an identifier; errors are one readable line (and,
with ``--json``, also a JSON object ``{"error": ..., "exit": ...}`` on stdout). ``--subject -``
and ``--identifier KIND=-`` read the value from stdin, or from a prompt that does not echo, so
that it stays out of shell history and the process list.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import AppNotFound, JobNotFound, NoMatch
from .app import APP_HELP, json_errors, load_gate, usage
from .coverage import run_coverage
from .resume import run_resume
from .single import purge_one, read_identifiers, read_secret

__all__ = ["AppNotFound", "JobNotFound", "NoMatch", "load_gate", "register"]


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
        args.subject = read_secret("the account id")
    identifiers = read_identifiers(args.identifier)
    gate = load_gate(args.app)
    if mode == "--coverage":
        return run_coverage(gate, args)
    if mode == "--vacuum":
        from .vacuum import run_vacuum

        return run_vacuum(gate, args)
    if mode == "--resume":
        return run_resume(gate, args)
    return purge_one(gate, args, identifiers)


def register(sub: Any) -> None:
    """Add ``purge`` to the ``agegate`` parser."""
    purge = sub.add_parser(
        "purge",
        help="delete a reported child's account data everywhere the app registered",
        description="Freeze an account, delete its data with every registered handler, block its "
        "identifiers, and journal it all. Exit 0 done (or already done), 1 failure, 2 bad usage.",
    )
    purge.add_argument("--app", help=APP_HELP)
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
