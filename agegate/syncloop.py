"""The gate from synchronous code: one event loop thread per gate, for sync views and WSGI.

A store may hold objects bound to the event loop that made them (PostgreSQL's connection pool
does), so every call a sync caller makes runs on the same loop: a daemon thread started on first
use. The store is closed on that loop when the interpreter exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .gate import AgeGate

__all__ = ["GateLoop", "loop_of", "run_sync"]

T = TypeVar("T")
_LOOPS: weakref.WeakKeyDictionary[AgeGate, GateLoop] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class GateLoop:
    """An event loop in a daemon thread, running one gate's store calls for sync callers."""

    def __init__(self, gate: AgeGate) -> None:
        self.pid = os.getpid()
        self._gate = weakref.ref(gate)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="agegate-loop", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the gate's loop and wait for its result (its exception is raised)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Close the gate's store on this loop, then stop and close the loop. Idempotent."""
        if self.loop.is_closed() or not self._thread.is_alive():
            return
        gate = self._gate()
        if gate is not None:
            # At exit, a store that cannot close has nothing left to lose.
            with contextlib.suppress(Exception):
                self.run(gate.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()
        atexit.unregister(self.close)


def loop_of(gate: AgeGate) -> GateLoop:
    """The loop thread of ``gate`` (started on first use)."""
    with _LOCK:
        found = _LOOPS.get(gate)
        # A forked worker (gunicorn --preload) inherits the object but not the thread.
        if found is None or found.pid != os.getpid():
            found = _LOOPS[gate] = GateLoop(gate)
        return found


def run_sync(gate: AgeGate, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` (a call on ``gate``) from synchronous code, on the gate's own loop.

    Refused from a thread that is running an event loop: blocking it would stall every other
    request on that loop; ``await`` the async call there instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return loop_of(gate).run(coro)
    coro.close()
    raise ConfigurationError("this is the synchronous call, for sync code: await the async one here")
