"""The ``agegate`` parser and :func:`main`, which runs a command and turns its errors into one
readable line on stderr and an exit status, never a traceback.

Exit status: 0 success, 1 failure (for ``check``: under age), 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import USAGE_ERRORS, AgeGateError
from .app import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``agegate`` parser, with every command group's commands, in the order ``--help``
    lists them."""
    from .audit import register as register_audit
    from .check import register as register_check
    from .demo import register as register_demo
    from .keys import register as register_keys
    from .keys import register_keygen
    from .policies import register as register_policies
    from .purge import register as register_purge
    from .receipt import register as register_receipt
    from .reports import register as register_reports
    from .signals import register as register_signals

    parser = argparse.ArgumentParser(
        prog="agegate", description="Neutral age screen, ASGI gate and purge tool."
    )
    parser.add_argument("--version", action="version", version=f"agegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (
        register_keygen,
        register_check,
        register_demo,
        register_purge,
        register_audit,
        register_keys,
        register_receipt,
        register_reports,
        register_policies,
        register_signals,
    ):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except USAGE_ERRORS as exc:  # bad usage, or bad input such as an account id
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
