"""``agegate demo``: the example shop on an embedded SQLite store (issue 4)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``demo`` command to the ``agegate`` parser."""
    demo = sub.add_parser("demo", help="run the example app on an embedded SQLite store")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from .cli import UsageError

    raise UsageError("agegate demo is not available yet")
