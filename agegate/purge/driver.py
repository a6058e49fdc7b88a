"""Driving one purge job: take its lease, run its steps in order (freeze, each handler, block
the identifiers), journal each finished step with its count, and finish the job; see
:mod:`agegate.purge`. :class:`JobDriver` is the half of :class:`~agegate.purge.Purger` that
does it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from ..connections import BeforeCommit
from ..errors import PurgeError, StepFailed, _LostLease
from ..stores import PurgeJob, Store
from ..stores.base import BlockingJournal
from . import lease
from .journal import BLOCK, FREEZE, PLANNED, RECEIPT, RESERVED_STEPS, handler_steps, note
from .registry import HandlerRegistry, Registered, rows_deleted
from .report import PurgeReport

__all__ = ["JobDriver", "Planned", "Step"]

_now = lease.now
Step = Callable[[], Awaitable[int]]
Planned = Callable[[int], Awaitable[None]]
#: A step as the runner calls it: given the function that journals its planned count.
_Run = Callable[[Planned], Awaitable[int]]


class JobDriver(HandlerRegistry):
    """Runs purge jobs: the steps of one job, under its lease, each journalled when done."""

    lease: timedelta
    wait_timeout: timedelta
    poll_interval: float

    def _identifier_count(self, hashes: Iterable[bytes]) -> int:
        if self._gate.identifier_block <= timedelta(0):
            return 0
        return math.ceil(len(set(hashes)) / len(self._gate.keys.kids))

    async def _drive(
        self,
        store: Store,
        job: PurgeJob,
        subject: str,
        extra_identifiers: tuple[bytes, ...],
        notes: tuple[str, ...] = (),
    ) -> PurgeReport:
        if job.state != "done":
            owner = lease.new_owner()
            lease.LIVE_OWNERS.add(owner)
            try:
                claimed = await lease.acquire(
                    store,
                    job.job_id,
                    owner,
                    lease=self.lease,
                    wait_timeout=self.wait_timeout,
                    poll_interval=self.poll_interval,
                    on_wait=lambda: self._emit("wait", job.job_id, "lease"),
                )
                if claimed is not None:
                    for entry in notes:
                        # An earlier run of the job did not have this note (a receipt asked for
                        # only now): journal it before any step, as a new job would have it.
                        if entry not in claimed.steps and note(claimed, RECEIPT) is None:
                            await store.record_step(job.job_id, owner=owner, step=entry, count=0, now=_now())
                            claimed.steps[entry] = 0
                    return await self._run(store, claimed, owner, subject, extra_identifiers)
            finally:
                lease.LIVE_OWNERS.discard(owner)
        finished = await store.get_job(job.job_id)
        if finished is None or finished.state != "done":
            raise PurgeError(f"purge job {job.job_id} did not finish", job_id=job.job_id)
        if extra_identifiers and self._gate.identifier_block > timedelta(0):
            # A repeated purge may name identifiers the first one did not know.
            await store.block_identifiers(
                extra_identifiers, until=_now() + self._gate.identifier_block, kids=self._gate.keys.kids
            )
        return self._report(finished, already_done=True, not_run=self._not_run(finished))

    async def _run(
        self, store: Store, job: PurgeJob, owner: str, subject: str, extra_identifiers: tuple[bytes, ...]
    ) -> PurgeReport:
        missing = [name for name in job.handlers if name not in self._handlers]
        plan: list[tuple[str, _Run, Step | None]] = [(FREEZE, _plain(lambda: self._freeze(subject)), None)]
        plan += [_handler_step(r, subject) for r in self._handlers.values()]
        identifiers = tuple(dict.fromkeys(job.identifier_hashes + extra_identifiers))
        plan.append((BLOCK, _plain(lambda: self._block(store, identifiers)), None))
        heartbeat = asyncio.create_task(
            lease.heartbeat(store, job.job_id, owner, time.monotonic(), self.lease)
        )
        step = FREEZE
        try:
            if missing:
                raise StepFailed(
                    f"handler {missing[0]!r} of this job is not registered in the app; "
                    "register it again, then resume"
                )
            for step, run, counter in plan:
                if step in job.steps:
                    self._emit("skip", job.job_id, step, job.steps[step])
                    continue
                self._emit("start", job.job_id, step)
                interrupted_before = job.steps.get(PLANNED + step)

                journal_planned = _planned_journal(store, job, owner, step)
                # A handler that can count but not journal its own count is counted first (the
                # account is frozen, so nothing new arrives). A handler that journals its count
                # (one transaction: delete, journal, commit) is never counted beforehand.
                if counter is not None and interrupted_before is None:
                    await journal_planned(await counter())
                count = rows_deleted(await run(journal_planned), step)
                if interrupted_before is not None:
                    count = max(count, interrupted_before)
                if not await store.record_step(job.job_id, owner=owner, step=step, count=count, now=_now()):
                    raise _LostLease()
                job.steps[step] = count
                self._emit("done", job.job_id, step, count)
            # The heartbeat must be stopped before the job is finished: a renewal landing after
            # finish_job("failed") would otherwise take the released lease again.
            await lease.stop(heartbeat)
            if not await store.finish_job(job.job_id, owner=owner, state="done", now=_now()):
                raise _LostLease()
        except _LostLease:
            raise PurgeError(
                f"another process took over purge job {job.job_id}; it will finish it", job_id=job.job_id
            ) from None
        except Exception as exc:
            what = "step" if step in RESERVED_STEPS else "handler"
            reason = (
                str(exc) if isinstance(exc, StepFailed) else f"{what} {step!r} failed ({type(exc).__name__})"
            )
            await lease.stop(heartbeat)
            # If even this fails the job stays "running"; its lease lapses and resume finishes it.
            with contextlib.suppress(Exception):
                await store.finish_job(job.job_id, owner=owner, state="failed", now=_now(), error=reason)
            raise PurgeError(
                f"{reason}; fix the cause, then finish purge job {job.job_id} with `agegate purge --resume`",
                job_id=job.job_id,
            ) from None
        finally:
            await lease.stop(heartbeat)
        finished = await store.get_job(job.job_id)
        assert finished is not None
        return self._report(finished, already_done=False)

    async def _freeze(self, subject: str) -> int:
        await self._gate.record(subject, "under_age")
        return 1

    async def _block(self, store: Store, identifiers: tuple[bytes, ...]) -> int:
        if not identifiers or self._gate.identifier_block <= timedelta(0):
            return 0
        await store.block_identifiers(
            identifiers, until=_now() + self._gate.identifier_block, kids=self._gate.keys.kids
        )
        return self._identifier_count(identifiers)

    def _not_run(self, job: PurgeJob) -> tuple[str, ...]:
        return tuple(name for name in self._handlers if name not in job.steps)

    def _report(self, job: PurgeJob, *, already_done: bool, not_run: tuple[str, ...] = ()) -> PurgeReport:
        return PurgeReport(
            job.job_id,
            job.state,
            handler_steps(job),
            already_done=already_done,
            ticket=job.ticket,
            operator=job.operator,
            finished_at=job.finished_at,
            identifiers_blocked=job.steps.get(BLOCK, 0),
            error=job.error,
            not_run=not_run,
            receipt=note(job, RECEIPT),
        )


def _planned_journal(store: Store, job: PurgeJob, owner: str, step: str) -> BeforeCommit[int]:
    """What journals the count a handler is about to delete (``planned:STEP``) before it is
    gone: if the run is interrupted half-way, the resumed run still reports it all. Awaited, or
    called in the handler's worker thread when the store can write from there (a built-in
    handler does, just before its commit)."""
    entry = PLANNED + step

    def count_of(planned: int) -> int | None:
        return None if entry in job.steps else rows_deleted(planned, step)

    def journalled(held: bool, count: int) -> None:
        if not held:
            raise _LostLease()
        job.steps[entry] = count

    async def on_loop(planned: int) -> None:
        count = count_of(planned)
        if count is not None:
            journalled(
                await store.record_step(job.job_id, owner=owner, step=entry, count=count, now=_now()), count
            )

    if not isinstance(store, BlockingJournal):
        return BeforeCommit(on_loop)
    record_now = store.record_step_blocking

    def in_thread(planned: int) -> None:
        count = count_of(planned)
        if count is not None:
            journalled(record_now(job.job_id, owner=owner, step=entry, count=count, now=_now()), count)

    return BeforeCommit(on_loop, in_thread)


def _plain(run: Step) -> _Run:
    return lambda planned: run()


def _handler_step(registered: Registered, subject: str) -> tuple[str, _Run, Step | None]:
    """A handler as a step. A built-in handler object that journals its own count
    (``run_journalled``) is called with the journalling function and is not counted first."""
    obj = registered.obj
    journalled = getattr(obj, "run_journalled", None) if obj is not None and obj is registered.run else None
    if journalled is not None:
        return registered.name, lambda planned: journalled(subject, planned), None
    run, count = registered.run, registered.count
    return registered.name, _plain(lambda: run(subject)), None if count is None else (lambda: count(subject))
