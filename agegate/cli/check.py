"""``agegate check``: screen one birth date, as the gate would (exit 0 allowed, 1 under age,
2 bad input). It needs no secret and stores nothing."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date, datetime, time
from typing import Any

from ..birthdate import DATE_ORDERS
from ..errors import ConfigurationError, InvalidBirthDate, UsageError
from ..gate import AgeGate
from ..keys import Keyring
from ..policy import AOE, AgePolicy
from ..stores import MemoryStore
from .app import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from .policies import load_table

__all__ = ["register"]


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


def register(sub: Any) -> None:
    """Add ``check`` to the ``agegate`` parser."""
    check = sub.add_parser("check", help="screen one birth date (exit 0 allowed, 1 under age, 2 bad input)")
    check.add_argument("--birth-date", required=True, help="the birth date, e.g. 2013-06-01")
    check.add_argument("--on", help="the day to check on, YYYY-MM-DD (default: today)")
    check.add_argument("--min-age", type=int, help="the policy's minimum age (default 13)")
    check.add_argument("--region", help="screen under this region's policy (e.g. DE, CA-QC; see `policies`)")
    check.add_argument("--policies", metavar="FILE", help="a region table file (TOML or JSON)")
    check.add_argument("--date-order", choices=DATE_ORDERS, default="MDY", help="how numeric dates read")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_check)
