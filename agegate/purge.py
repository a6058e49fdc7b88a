"""Purging a reported child's account: handler registry, job journal, reports, receipts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gate import AgeGate

Handler = Callable[[str], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """The outcome of a purge job."""

    job_id: str
    state: str
    deleted: dict[str, int] = field(default_factory=dict)
    already_done: bool = False


class Purger:
    """The handlers that delete an account's data, and the purge job that runs them."""

    def __init__(self, gate: AgeGate) -> None:
        self._gate = gate
        self._handlers: dict[str, Handler] = {}

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Register ``async def f(subject) -> rows deleted`` under ``name``."""

        def register(func: Handler) -> Handler:
            self._handlers[name] = func
            return func

        return register

    async def purge(
        self,
        subject: str,
        *,
        ticket: str,
        operator: str,
        identifiers: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> PurgeReport:
        raise NotImplementedError("purge lands with issue 5")
