"""Whether an account id names anything at all, before a purge freezes it.

A purge of an id that matches nothing (a typo, an email pasted where the id goes) would
otherwise report "done": the operator believes a child's data is gone, and the id is frozen
for an account that may be created later. The command line asks :func:`find_match` first and
refuses such an id unless the operator says it is right (``--allow-no-match``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import PurgeError
from .registry import Registered

if TYPE_CHECKING:
    from ..gate import AgeGate

__all__ = ["Match", "find_match"]


@dataclass(frozen=True, slots=True)
class Match:
    """What an account id matched: ``matched`` is true when the gate's store knows it (an
    attestation or a purge job) or a handler counted rows of it. ``uncounted`` names the
    handlers that cannot count in advance, which might hold data the check could not see."""

    matched: bool
    uncounted: tuple[str, ...] = ()


async def find_match(gate: AgeGate, subject: str, handlers: Iterable[Registered]) -> Match:
    """Look for ``subject`` in the store, then in each handler that can count, stopping at the
    first hit (a real account usually matches the first place looked at)."""
    store = await gate.store()
    if await gate.status_of(subject) != "unknown":
        return Match(True)
    if await store.find_job(gate.subject_hashes(subject)) is not None:
        return Match(True)
    uncounted = []
    for registered in handlers:
        if registered.count is None:
            uncounted.append(registered.name)
            continue
        try:
            rows = await registered.count(subject)
        except Exception as exc:
            raise PurgeError(f"counting handler {registered.name!r} failed ({type(exc).__name__})") from None
        if rows:
            return Match(True)
    return Match(False, tuple(uncounted))
