"""The age signal a request carries, read through the app's ``signal=`` function.

A mobile client posts its platform's signal (Google Play's Age Signals result, Apple's Declared
Age Range, an AB 1043 bracket) with its requests, typically in a header, since the gate never
reads a body; the app's function maps the ASGI scope to an :class:`~agegate.AgeSignal` or
``None``. A signal is as trustworthy as the client that sends it, like a typed birth date.

A function that raises, or returns anything but an ``AgeSignal`` or ``None``, fails closed: the
request gets no allowed result from it and is refused (``400 invalid_age_signal``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from starlette.types import Scope

from ..decisions import Decision
from ..errors import InvalidSignal
from ..gate import AgeGate
from ..signals import AgeSignal

__all__ = ["SignalFunc", "read_signal"]

SignalFunc = Callable[[Scope], AgeSignal | None] | Callable[[Scope], Awaitable[AgeSignal | None]]

_log = logging.getLogger("agegate.asgi")


async def read_signal(
    func: SignalFunc, scope: Scope, gate: AgeGate, region: str | None = None
) -> tuple[AgeSignal, Decision | None] | None:
    """``None`` (no signal) or ``(signal, its decision under the policy of ``region``, None when
    it straddles)``. Raises
    :class:`~agegate.InvalidSignal` for a signal that cannot be used, whatever the cause."""
    try:
        found = func(scope)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            return None
        if not isinstance(found, AgeSignal):
            raise TypeError("the signal function must return an agegate.AgeSignal or None")
        return found, gate.screen_signal(found, region=region)
    except InvalidSignal:
        raise  # the client's signal is malformed: its own fault, nothing to log
    except Exception as exc:
        # A fault in the app's function: refused, and said for the operator (the type only: the
        # message could quote the signal).
        _log.error("the age gate's signal function failed: %s", type(exc).__name__)
        raise InvalidSignal("the age signal could not be read") from None
