"""What every ``agegate`` command that works on an app shares: finding the app's gate
(``--app MODULE:ATTR``), running async work on it, writing files, and errors as JSON.

``--app MODULE:ATTR`` (or ``AGEGATE_APP``) names the app's :class:`~agegate.AgeGate`: ``ATTR``
may be the gate itself, or any object with a ``.gate`` attribute (the middleware), or an app
with ``.state.gate`` (Starlette/FastAPI ``app.state.gate``). The module is imported from the
working directory, like ``uvicorn`` does. An app that fails to load is one line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..errors import USAGE_ERRORS, AgeGateError, AppNotFound, ConfigurationError, JobNotFound, UsageError
from ..gate import AgeGate

__all__ = [
    "APP_HELP",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "AppNotFound",
    "JobNotFound",
    "json_errors",
    "load_gate",
    "run",
    "save",
    "usage",
    "when",
]

T = TypeVar("T")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: The help of every command's ``--app``.
APP_HELP = "the app's gate as MODULE:ATTR (default: $AGEGATE_APP)"


def usage(message: str) -> UsageError:
    return UsageError(message)


def load_gate(spec: str | None) -> AgeGate:
    """Import ``MODULE:ATTR`` and find the :class:`AgeGate` it names (see the module docs)."""
    spec = spec or os.environ.get("AGEGATE_APP", "")
    if not spec:
        raise usage("say which app to use: --app MODULE:ATTR, or set AGEGATE_APP")
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise usage("--app takes MODULE:ATTR, for example --app myshop.main:gate")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppNotFound(
                f"cannot find the app module {module_name!r}: run this from the app's directory "
                "or add it to PYTHONPATH"
            ) from None
        raise AppNotFound(
            f"the app module {module_name!r} needs {exc.name!r}, which is not installed"
        ) from None
    except AgeGateError as exc:
        # agegate's own messages are written to be shown (no key material, no personal data).
        raise AppNotFound(f"the app module {module_name!r} cannot start: {exc}") from None
    except SystemExit as exc:
        raise AppNotFound(
            f"the app module {module_name!r} exited (status {exc.code}) while being imported"
        ) from None
    except Exception as exc:
        raise import_failed(module_name, exc) from None
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise AppNotFound(f"the app module {module_name!r} has no {attr!r}") from None
        except AgeGateError as exc:
            raise AppNotFound(f"{spec} cannot start: {exc}") from None
        except Exception as exc:
            # A lazy module attribute (a module __getattr__) that builds the gate failed.
            raise import_failed(module_name, exc) from None
    for candidate in (
        found,
        getattr(found, "gate", None),
        getattr(getattr(found, "state", None), "gate", None),
    ):
        if isinstance(candidate, AgeGate):
            return candidate
    raise AppNotFound(f"{spec} is not an AgeGate, nor an object with .gate or .state.gate")


def import_failed(module_name: str, exc: Exception) -> AppNotFound:
    # Only the exception's class: its message may hold a connection string or a password.
    return AppNotFound(
        f"importing the app module {module_name!r} failed with {type(exc).__name__}; "
        f"run `python -c 'import {module_name}'` to see why"
    )


def run(gate: AgeGate | None, work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await work()
        finally:
            if gate is not None:
                await gate.aclose()

    return asyncio.run(main())


def save(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write the receipt to {path!r}: {exc.strerror}") from None


def json_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """With ``--json``, a failure is also printed as JSON on stdout, for scripts that parse it."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except AgeGateError as exc:
            if getattr(args, "json", False):
                code = EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE
                print(json.dumps({"error": str(exc), "exit": code}))
            raise

    return run


def when(moment: datetime | None) -> str:
    """A moment as the commands print it (UTC, to the minute), or ``-``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"
