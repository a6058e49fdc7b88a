"""The Store protocol: what agegate keeps, and the guarantees every store gives.

Stores hold only keyed hashes, policy names, times and purge-job bookkeeping. Every method is
async; a method either completes or has no effect (each is one transaction). Times are
timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "REPORT_STATES",
    "AttestationRecord",
    "BlockingJournal",
    "JobState",
    "KeyUse",
    "PurgeJob",
    "ReportRecord",
    "ReportState",
    "SignupWrite",
    "Store",
    "key_uses_from",
]

JobState = Literal["running", "done", "failed", "dry_run"]
#: A report's life: ``open`` (received), ``purging`` (a purge from it has begun), ``closed``
#: (decided; the answer not yet delivered), ``delivered`` (answered; its sealed part erased).
ReportState = Literal["open", "purging", "closed", "delivered"]
REPORT_STATES: tuple[ReportState, ...] = ("open", "purging", "closed", "delivered")


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """One account's screen result, as stored.

    ``subject_hash`` is HMAC(subject key, account id); ``mac`` is HMAC(attestation key, account
    id | outcome | policy) under key ``kid``: the outcome cannot be read without the key.
    """

    subject_hash: bytes
    kid: str
    mac: bytes
    policy: str
    checked_at: datetime


@dataclass(frozen=True, slots=True)
class SignupWrite:
    """What :func:`add_attestation` did: wrote the record (``written``), or wrote nothing
    because an identifier is blocked (``blocked``) or the account has a record (``current``;
    ``None`` when another writer's record appeared meanwhile: read it again)."""

    written: bool = False
    blocked: bool = False
    current: AttestationRecord | None = None


@dataclass(frozen=True, slots=True)
class KeyUse:
    """How many of a store's records need key ``kid``: attestations (needed as long as they
    exist) and identifier blocks still in force (needed until ``blocked_until``, the latest
    end among them). A block counts for every key id listed when it was written."""

    kid: str
    attestations: int = 0
    blocks: int = 0
    blocked_until: datetime | None = None


def key_uses_from(
    attestations: Mapping[str, int], blocks: Sequence[tuple[Sequence[str], int, datetime]]
) -> list[KeyUse]:
    """:class:`KeyUse` per key id, by id, from attestation counts per kid and ``(kids, count,
    latest end)`` groups of blocks in force (every store reads them so, then calls this)."""
    uses = {kid: KeyUse(kid, attestations=count) for kid, count in attestations.items() if count}
    for kids, count, until in blocks:
        for kid in dict.fromkeys(kids):
            use = uses.get(kid, KeyUse(kid))
            latest = until if use.blocked_until is None else max(use.blocked_until, until)
            uses[kid] = KeyUse(kid, use.attestations, use.blocks + count, latest)
    return [uses[kid] for kid in sorted(uses)]


@dataclass(slots=True)
class PurgeJob:
    """A purge of one account, as journalled.

    ``subject_hash`` (under the active key when the job was made) makes a job unique per
    account. ``sealed_subject`` holds the account id sealed with AES-GCM (journal key) so that
    an interrupted job can be resumed; it and ``identifier_hashes`` are wiped when the job is
    done. ``steps`` maps each finished step (handler name, or an internal step name) to its
    count, in the order finished.
    """

    job_id: str
    subject_hash: bytes
    ticket: str
    operator: str
    handlers: tuple[str, ...]
    state: JobState
    created_at: datetime
    updated_at: datetime
    sealed_subject: bytes | None = None
    identifier_hashes: tuple[bytes, ...] = ()
    steps: dict[str, int] = field(default_factory=dict)
    finished_at: datetime | None = None
    error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(slots=True)
class ReportRecord:
    """A report that a child has an account, as stored.

    ``sealed`` holds everything the reporter typed (the account, their relation to the child,
    their contact address, the free text) sealed with AES-GCM under the ``report`` purpose key;
    it is erased (``None``) once the answer was delivered. The other fields hold no personal
    data: the reference, times, the state, the outcome (``purged`` or the close reason, a
    fixed code) and the linked purge job.
    """

    reference: str
    received_at: datetime
    due_at: datetime
    state: ReportState
    sealed: bytes | None
    updated_at: datetime
    outcome: str | None = None
    job_id: str | None = None
    closed_at: datetime | None = None
    delivered_at: datetime | None = None
    attempts: int = 0
    error: str | None = None


@runtime_checkable
class Store(Protocol):
    """Persistent state behind an :class:`~agegate.AgeGate`. See ``tests/store_contract.py``."""

    url: str

    async def open(self) -> None:
        """Connect, create or migrate the schema forward. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    # -- change signal ---------------------------------------------------------------------

    def revision(self) -> int:
        """A number that changes whenever :meth:`bump_revision` is called, by this process or
        any other sharing the store. Cheap enough for every request: no I/O round trip. The gate
        calls it before answering from its in-process status cache."""

    async def bump_revision(self) -> None:
        """Signal every process sharing the store that an account's status changed (marked under
        age, or deleted): their status caches are dropped at once."""

    # -- attestations -----------------------------------------------------------------------

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        """Insert or replace the record for ``record.subject_hash``, and delete the records under
        the hashes in ``replaces`` (the same account under older keys), atomically."""

    async def swap_attestation(
        self,
        record: AttestationRecord,
        *,
        replaces: Sequence[bytes] = (),
        expected: AttestationRecord | None,
    ) -> bool:
        """:meth:`put_attestation`, but only if the account's record is still ``expected`` (same
        ``subject_hash`` and ``mac``; ``None``: the account has no record, under
        ``record.subject_hash`` nor under ``replaces``), checked and written atomically.
        Returns whether it wrote.

        The signup hook reads the account's record, decides, and writes with this, so that a
        purge marking the account under age in between is never overwritten. The stores agegate
        ships also take ``blocks`` and ``now`` (see :func:`add_attestation`): then they write
        only if none of the identifier hashes in ``blocks`` is blocked at ``now`` either."""

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        """The record under the first of ``subject_hashes`` that has one, or ``None``."""

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        """Delete the records under these hashes; returns how many were deleted."""

    # -- identifiers of purged child accounts --------------------------------------------------

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        """Block these hashes until ``until`` (an existing block is extended, never shortened).

        ``kids`` are the key ids listed when the hashes were made: the block needs them (see
        :meth:`key_uses`) while it lasts. An extended block takes the new ``kids``."""

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        """Whether any of these hashes is blocked at ``now``."""

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        """Drop blocks that ended before ``now``; returns how many."""

    # -- accounts flagged by an under-age age signal (actual knowledge) --------------------------

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        """Keep ``sealed`` (an account id sealed with the journal key) under ``flag_hash``, unless
        a flag exists under ``flag_hash`` or any hash in ``known`` (the same account under older
        keys); atomically. Returns whether it was added. The store keeps nothing else of it."""

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        """Every flag as ``(flag_hash, sealed)``."""

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        """Delete the flags under these hashes; returns how many were deleted."""

    # -- the keys the records were written under -----------------------------------------------

    async def key_checks(self) -> dict[str, bytes]:
        """Every key id this store has been opened with, and its check value (a keyed hash that
        tells the key from another one with the same id; never the key)."""

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        """Record these key ids and check values, keeping the value of an id already recorded;
        returns :meth:`key_checks` afterwards, atomically. The first keys ever registered are
        also taken to be needed by the blocks written before the store tracked keys."""

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        """Per key id, the attestations written under it and the blocks in force at ``now``
        that need it; key ids no record needs are left out."""

    # -- purge job journal -------------------------------------------------------------------

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        """Insert ``job`` unless a job with its ``subject_hash`` exists; atomically.

        Returns ``(the stored job, True)`` when inserted, ``(the existing job, False)`` otherwise.
        Raises :class:`~agegate.StoreError` when another account's job has the same ``job_id``.
        """

    async def get_job(self, job_id: str) -> PurgeJob | None:
        """The job with this id, or ``None``."""

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        """The job for any of these subject hashes, or ``None``."""

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        """Every job (or every job not yet done/dry_run), oldest first."""

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        """Take the job's lease for ``owner`` until ``until``; atomically (compare and set).

        Succeeds when the job is not finished and its lease is free, expired at ``now``, already
        held by ``owner``, or held by ``takeover`` (a holder known to be dead).
        """

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """Journal a finished step with its count, if ``owner`` holds the lease. A step recorded
        twice keeps its first count. Returns whether the lease was held."""

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        """Set the job's final (or failed) state and release the lease, if ``owner`` holds it.

        ``done`` and ``dry_run`` also wipe ``sealed_subject`` and ``identifier_hashes`` and set
        ``finished_at``; ``failed`` keeps them so the job can be resumed. Returns whether the
        lease was held."""

    async def reopen_job(
        self,
        job_id: str,
        *,
        handlers: tuple[str, ...],
        sealed_subject: bytes,
        identifier_hashes: tuple[bytes, ...] = (),
        now: datetime,
    ) -> bool:
        """Set a ``done`` job running again, with a new handler list and the sealed account id
        (so that it can be resumed), keeping its recorded steps; atomically. For handlers an app
        registered after the account's purge finished. Returns whether the job was ``done``."""

    async def delete_job(self, job_id: str) -> bool:
        """Remove a job (used for dry runs, which leave no journal). Returns whether it existed."""

    # -- reports from parents ----------------------------------------------------------------

    async def create_report(self, report: ReportRecord) -> None:
        """Insert ``report``; :class:`~agegate.StoreError` when its reference exists."""

    async def get_report(self, reference: str) -> ReportRecord | None:
        """The report with this reference, or ``None``."""

    async def list_reports(self) -> list[ReportRecord]:
        """Every report, oldest first."""

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        """Write ``report``'s state, sealed part, outcome, job, times, attempts and error over
        the stored report of its reference, if that one is still in state ``expected`` (compare
        and set). Returns whether it wrote. A sealed part set to ``None`` leaves no copy behind
        in the store's files (SQLite: its WAL is checkpointed)."""


@runtime_checkable
class BlockingJournal(Protocol):
    """What a store may offer besides :class:`Store`: :meth:`record_step` as a blocking call.

    A purge journals a built-in handler's count inside the handler's transaction, from the worker
    thread that runs it, just before the commit. With this, that thread writes the journal
    itself, instead of handing the write to the event loop and waiting for it to come back (two
    thread switches fewer per account). The SQLite store offers it; a store without it is
    journalled through the event loop, as before.
    """

    def record_step_blocking(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        """:meth:`Store.record_step`, with the same outcome and guarantees, called from a thread
        that may block (never the event loop's): returns whether ``owner`` held the lease;
        raises :class:`~agegate.StoreUnavailable` when the store cannot answer in time."""
        ...


async def add_attestation(
    store: Store,
    record: AttestationRecord,
    *,
    replaces: Sequence[bytes] = (),
    identifier_hashes: Sequence[bytes] = (),
    now: datetime,
) -> SignupWrite:
    """A new account's signup: insert ``record`` unless any of ``identifier_hashes`` is blocked
    at ``now`` or the account has a record (under ``record.subject_hash`` or ``replaces``); say
    which, with the account's record.

    On a store whose class sets ``swaps_unless_blocked`` (the stores agegate ships), the check
    and the write are one transaction: :meth:`~Store.swap_attestation` with ``expected=None``,
    ``blocks`` and ``now``; it is then read why nothing was written, if it was not. Another
    store gets the three calls it always had: :meth:`~Store.is_blocked`,
    :meth:`~Store.get_attestation` and :meth:`~Store.swap_attestation`."""
    whole = getattr(store, "swaps_unless_blocked", False) is True
    if whole and await store.swap_attestation(  # type: ignore[call-arg]
        record, replaces=replaces, expected=None, blocks=identifier_hashes, now=now
    ):
        return SignupWrite(written=True)
    if identifier_hashes and await store.is_blocked(identifier_hashes, now=now):
        return SignupWrite(blocked=True)
    current = await store.get_attestation([record.subject_hash, *replaces])
    if (
        not whole
        and current is None
        and await store.swap_attestation(record, replaces=replaces, expected=None)
    ):
        return SignupWrite(written=True)
    return SignupWrite(current=current)
