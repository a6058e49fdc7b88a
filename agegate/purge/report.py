"""What a purge tells its caller: the report of a job and the events it emits while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = ["Listener", "PlanStep", "PurgeEvent", "PurgeReport"]


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One table of a relational handler's dry run: the foreign-key path from the account's
    row it is reached by (``customer <- rental.customer_id``), what happens to the rows
    (``delete``, ``set null``, ``delete if unreferenced``) and how many rows it touches."""

    handler: str
    table: str
    path: str
    action: str
    count: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """The outcome of a purge job.

    ``deleted`` maps each handler to the rows (or files) it deleted — for a dry run, what it
    would delete. ``already_done`` says the job had finished before this call (nothing was
    deleted now). ``uncounted`` lists handlers without a ``count`` side (dry runs only).
    A dry run makes no job: its ``job_id`` is that of an earlier purge of the account, or ``""``.
    ``not_run`` lists handlers registered after the account's purge had finished, which have not
    run for it yet (a dry run reports them; a real run reopens the job and runs them, see
    :meth:`Purger.purge`).
    """

    job_id: str
    state: str
    deleted: dict[str, int] = field(default_factory=dict)
    already_done: bool = False
    ticket: str = ""
    operator: str = ""
    finished_at: datetime | None = None
    identifiers_blocked: int = 0
    uncounted: tuple[str, ...] = ()
    error: str | None = None
    #: Handlers registered after this account's purge finished: they did not run for it (a
    #: finished job is never reopened), so their data of the account is still there.
    not_run: tuple[str, ...] = ()
    #: Dry runs: what each relational handler would do, table by table (see :class:`PlanStep`).
    plan: tuple[PlanStep, ...] = ()
    #: Where the operator asked this job's signed receipt to be written (journalled with the
    #: job, so that a resumed job writes it too), or ``None``.
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class PurgeEvent:
    """What a purge is doing, for listeners (progress display, metrics, tests).

    ``kind`` is ``start`` (a step begins), ``done`` (a step was recorded, with its ``count``),
    ``skip`` (a step was already recorded by an earlier run), ``wait`` (another process holds
    the job), or ``count`` (a dry run counted a handler; ``count`` is ``None`` if it cannot).
    """

    kind: Literal["start", "done", "skip", "wait", "count"]
    job_id: str
    step: str
    count: int | None = None


Listener = Callable[[PurgeEvent], None]
