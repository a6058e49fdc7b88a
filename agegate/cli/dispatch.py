"""The ``agegate`` console script.

Exit status: 0 success, 1 failure (for ``check``: under age), 2 bad usage or bad input.
Errors are one readable line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime, time

from .. import __version__
from ..birthdate import DATE_ORDERS
from ..errors import AgeGateError, ConfigurationError, InvalidBirthDate, KeyringError
from ..errors import UsageError as UsageError  # re-exported: subcommand modules import it from here
from ..gate import AgeGate
from ..keys import Keyring
from ..policy import AOE, AgePolicy
from ..stores import MemoryStore
from .policies import load_table

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _keygen(args: argparse.Namespace) -> int:
    try:
        ring = Keyring.generate(args.kid)
    except KeyringError as exc:
        raise UsageError(f"--kid: {exc}") from None
    print(ring.to_string())
    return EXIT_OK


def _parse_on(text: str) -> datetime:
    try:
        # fromisoformat alone would also take 20260601 and week dates such as 2026-W22-7
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII) is None:
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError("--on takes a date as YYYY-MM-DD") from None
    if not 1900 <= day.year <= 9000:
        raise UsageError("--on takes a date between the years 1900 and 9000")
    # Any moment of that calendar day Anywhere on Earth: "today" is then that day.
    return datetime.combine(day, time(12), AOE)


def _check(args: argparse.Namespace) -> int:
    now = _parse_on(args.on) if args.on else None
    if args.region is not None and args.min_age is not None:
        raise UsageError("give --min-age or --region, not both")
    try:
        policy = AgePolicy(min_age=13 if args.min_age is None else args.min_age)
    except ConfigurationError as exc:
        raise UsageError(f"--min-age: {exc}") from None
    # check needs no secret and stores nothing: a throwaway key and an in-memory store.
    gate = AgeGate(
        keys=Keyring.generate(),
        store=MemoryStore(),
        policy=policy,
        date_order=args.date_order,
        policies=load_table(args.policies),
    )
    try:
        decision = gate.screen({"birth_date": args.birth_date}, now=now, region=args.region)
    except InvalidBirthDate as exc:
        if args.json:
            print(json.dumps({"error": "invalid_birth_date", "code": exc.code, "message": exc.message}))
        else:
            print(f"agegate: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        out = {"outcome": decision.outcome, "policy": decision.policy}
        if decision.version:
            out["version"] = decision.version
        print(json.dumps(out))
    else:
        print(decision.outcome)
    return EXIT_OK if decision.allowed else EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agegate", description="Neutral age screen, ASGI gate and purge tool."
    )
    parser.add_argument("--version", action="version", version=f"agegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = sub.add_parser("keygen", help="print a new key for AGEGATE_SECRET_KEYS")
    keygen.add_argument("--kid", help="the key id (default: a random one)")
    keygen.set_defaults(func=_keygen)

    check = sub.add_parser("check", help="screen one birth date (exit 0 allowed, 1 under age, 2 bad input)")
    check.add_argument("--birth-date", required=True, help="the birth date, e.g. 2013-06-01")
    check.add_argument("--on", help="the day to check on, YYYY-MM-DD (default: today)")
    check.add_argument("--min-age", type=int, help="the policy's minimum age (default 13)")
    check.add_argument("--region", help="screen under this region's policy (e.g. DE, CA-QC; see `policies`)")
    check.add_argument("--policies", metavar="FILE", help="a region table file (TOML or JSON)")
    check.add_argument("--date-order", choices=DATE_ORDERS, default="MDY", help="how numeric dates read")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_check)

    from .demo import register as register_demo
    from .policies import register as register_policies
    from .purge import register as register_purge
    from .records import register as register_records
    from .reports import register as register_reports
    from .signals import register as register_signals

    register_demo(sub)
    register_purge(sub)
    register_records(sub)
    register_reports(sub)
    register_policies(sub)
    register_signals(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        print(f"agegate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgeGateError as exc:
        print(f"agegate: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as exc:
        # A command may say what was done and how to finish it (agegate purge does).
        print(f"agegate: interrupted{': ' + str(exc) if exc.args else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`agegate policies | head`): what it read was complete; say
        # nothing more, and keep Python from complaining as it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    return result
