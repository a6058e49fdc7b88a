"""``agegate demo``: the example shop behind the gate, on an embedded SQLite store.

Keys come from ``AGEGATE_SECRET_KEYS`` when it is set; otherwise the demo makes ephemeral ones
and says so (the only command that may). Data lives in a temporary folder removed on exit,
unless ``--data-dir`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import KeyringMismatch, UsageError
from ..gate import AgeGate
from ..keys import DEFAULT_ENV_VAR, Keyring
from .app import EXIT_FAILURE, EXIT_OK

__all__ = ["register"]

#: The source checkout's root, where ``examples/`` lives.
_CHECKOUT = Path(__file__).resolve().parents[2]


class _SigtermExit:
    """Turns SIGTERM into an exit that cleans up.

    The handler raises ``SystemExit`` (not an ``Exception``), so that code that wraps ordinary
    exceptions (logging's dictConfig, while uvicorn is still starting) lets it through, and so
    does an asyncio callback it interrupts (asyncio logs and drops other exceptions from
    callbacks, but re-raises SystemExit). ``arrived`` tells that exit from any other."""

    def __init__(self) -> None:
        self.arrived = False

    def __call__(self, signum: int, frame: object) -> None:
        self.arrived = True
        raise SystemExit(EXIT_OK)


def _port(text: str) -> int:
    """A TCP port number, 1 to 65535 (argparse reports anything else as a usage error)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def register(sub: Any) -> None:
    """Add the ``demo`` command to the ``agegate`` parser."""
    demo = sub.add_parser("demo", help="run the example shop on an embedded SQLite store")
    demo.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="the port to listen on (default 8000)")
    demo.add_argument(
        "--data-dir", help="keep the shop's and the gate's data here (default: a temporary folder)"
    )
    demo.set_defaults(func=_demo)


def _load_example() -> Any:
    if not (_CHECKOUT / "examples" / "starlette_app.py").is_file():
        raise UsageError("agegate demo runs examples/starlette_app.py from a source checkout of agegate")
    if str(_CHECKOUT) not in sys.path:
        sys.path.insert(0, str(_CHECKOUT))
    return importlib.import_module("examples.starlette_app")


def _keys_fit(gate: AgeGate, folder: Path) -> bool:
    """Open the demo's store once before serving: keys that do not fit data kept from an earlier
    run (ephemeral ones, say) are refused here, in one line, not by the server as it starts."""

    async def check() -> None:
        async with gate:
            pass

    try:
        asyncio.run(check())
    except KeyringMismatch as exc:
        print(
            f"agegate demo: the data in {folder} was written under other keys: {exc}. "
            f"Set {DEFAULT_ENV_VAR} to the keys of that run, or use another --data-dir.",
            file=sys.stderr,
        )
        return False
    return True


def _demo(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print("agegate: the demo needs uvicorn: pip install 'agegate[server]'", file=sys.stderr)
        return EXIT_FAILURE
    example = _load_example()
    if os.environ.get(DEFAULT_ENV_VAR):
        keys = Keyring.from_env()
        print(f"agegate demo: using the keys in {DEFAULT_ENV_VAR}")
    else:
        keys = Keyring.generate("demo")
        print(
            f"agegate demo: {DEFAULT_ENV_VAR} is not set, so these keys are EPHEMERAL: cookies and "
            "stored results stop working when the demo stops. Never run a real site like this."
        )
    with contextlib.ExitStack() as cleanup:
        if args.data_dir:
            folder = Path(args.data_dir)
        else:
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="agegate-demo-")))
        # uvicorn re-raises SIGTERM once it has shut down; turn it into an exit that cleans up.
        sigterm = _SigtermExit()
        previous = signal.signal(signal.SIGTERM, sigterm)
        cleanup.callback(signal.signal, signal.SIGTERM, previous)
        try:
            app = example.create_app(keys=keys, data_dir=folder, secure_cookies=False)
            if not _keys_fit(app.state.gate, folder):
                return EXIT_FAILURE
            print(f"agegate demo: data in {folder} (SQLite){'' if args.data_dir else ', removed on exit'}")
            print(f"agegate demo: open http://{args.host}:{args.port}/ (Ctrl+C stops it)", flush=True)
            # No access log, warnings only: both would write visitors' IP addresses (uvicorn logs
            # each websocket it accepts at INFO, and the gate accepts a refused one to close it).
            uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
        except SystemExit:
            if not sigterm.arrived:
                raise
    return EXIT_OK
