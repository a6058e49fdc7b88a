"""``agegate policies``: print the region table (the built-in one, or a deployment's file)."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from ..errors import ConfigurationError, UsageError
from ..regions import PolicyTable

__all__ = ["load_table", "register"]


def load_table(path: str | None) -> PolicyTable:
    """The table in ``path`` (``--policies``), or the built-in one; a bad file is bad usage."""
    try:
        return PolicyTable.coerce(path)
    except ConfigurationError as exc:
        raise UsageError(f"--policies: {exc}") from None


def _policies(args: argparse.Namespace) -> int:
    table = load_table(args.policies)
    if args.json:
        print(json.dumps(table.as_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"agegate region table, version {table.version}")
    print(f"a region not listed here gets the strictest age: {table.strictest.min_age}\n")
    for code, rule in table.rules.items():
        print(f"{code:<6} {rule.min_age:>3}  {rule.name:<16} {rule.region}")
        for label, text in (("restricts", rule.restricts), ("source", rule.source), ("note", rule.note)):
            if text:
                print(
                    textwrap.fill(text, 100, initial_indent=f"{'':12}{label}: ", subsequent_indent=" " * 14)
                )
    return 0


def register(sub: Any) -> None:
    """Add ``policies`` to the ``agegate`` command's subparsers."""
    policies = sub.add_parser("policies", help="print the minimum ages by region")
    policies.add_argument("--policies", metavar="FILE", help="a region table file (TOML or JSON)")
    policies.add_argument("--json", action="store_true", help="print JSON")
    policies.set_defaults(func=_policies)
