"""Purging a reported child's account: handler registry, job journal, reports, receipts.

A purge is a job journalled in the store, unique per account (by its keyed hash). Its steps
run in this order, and each finished step is recorded with its count before the next starts::

    freeze              the account's attestation becomes under_age: blocked at once, everywhere
    <each handler>      in registration order; each deletes the account's data from one place
    block_identifiers   the hashed email/phone/username may not sign up again for a while
    done                the account id and identifier hashes are wiped from the job

A crash at any point leaves a job that :meth:`Purger.resume` (``agegate purge --resume``)
finishes, skipping the steps already recorded. So that it can, the job holds the account id
sealed with AES-GCM under the ``journal`` key until it is done; nothing else about the account
is kept but keyed hashes. A handler interrupted after deleting but before its step was recorded
runs again on resume (handlers are idempotent), and then reports only what it deleted that time.

One process at a time works on a job: it holds a lease (``host:pid:start:namespace:random``)
that it renews while it runs, retrying a renewal that fails. Another purge of the same account
waits for it and then reports ``already_done``. A lease is taken over at once only when its
holder provably no longer runs: same host, same boot and PID namespace (so not a process in
another container that shares the host name), and that pid is gone or now belongs to a process
started at another time. Any other lease is taken over when it expires.

Handlers must never block the event loop (call blocking drivers with ``asyncio.to_thread``):
the lease is renewed on the event loop, and a handler that blocks it for longer than the lease
lets another process take the job over and run the same handler at the same time. A renewal
that comes later than the lease is logged as a warning on the ``agegate.purge`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import os
import re
import secrets
import socket
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from .coverage import Uncovered, find_uncovered
from .errors import AgeGateError, ConfigurationError, InvalidToken
from .handlers import TableRef
from .receipts import make_receipt
from .stores import PurgeJob, Store
from .tokens import Sealer

if TYPE_CHECKING:
    from .gate import AgeGate

Handler = Callable[[str], Awaitable[int]]
Counter = Callable[[str], Awaitable[int]]
H = TypeVar("H", bound=Handler)

#: Steps that are not handlers; no handler may take these names.
FREEZE, BLOCK = "freeze", "block_identifiers"
RESERVED_STEPS = (FREEZE, BLOCK)
#: Journal entries ``planned:NAME`` hold what a handler's ``count`` side saw before it ran.
PLANNED = "planned:"
#: The journal entry ``policy:NAME`` (count 0) names the age policy in force when the job began;
#: the job's receipt names it, whatever the app's policy is when the receipt is issued.
POLICY = "policy:"
#: The journal entry ``key:KID`` (count 0) names the key that was active when the job began: the
#: job's receipt is signed with it while it is listed, so re-issuing gives the same document.
SIGNING_KEY = "key:"
#: Identifier kinds a purge blocks unless the app lists others in ``Purger.identifier_kinds``.
IDENTIFIER_KINDS = ("email", "phone", "username")
#: Journal entries that are notes about the job, not steps of it.
_NOTES = NOTES = (PLANNED, POLICY, SIGNING_KEY)
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
_MAX_LABEL = 200
#: Owners of leases held by purges running in this process (a lease of this pid not listed
#: here was left by a purge that was cancelled, and may be taken over).
_LIVE_OWNERS: set[str] = set()
_log = logging.getLogger("agegate.purge")


class PurgeError(AgeGateError):
    """A purge could not finish. The message names the step or handler, never the account; the
    job (``job_id``) stays in the journal and ``agegate purge --resume`` finishes it."""

    def __init__(self, message: str, *, job_id: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id


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


class PurgeHandler(Protocol):
    """A handler object: awaitable with the account id, returning the rows deleted. It may also
    have ``name``, ``async count(subject) -> int`` and ``covers`` (tables, for the coverage check)."""

    def __call__(self, subject: str) -> Awaitable[int]: ...


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    run: Handler
    count: Counter | None
    covers: tuple[TableRef, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _label(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"a purge needs a {what}")
    value = value.strip()
    if len(value) > _MAX_LABEL or any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ConfigurationError(f"the {what} must be one line of at most {_MAX_LABEL} characters")
    return value


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or ``""`` if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count fields after its ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else ""


@functools.cache
def _namespace() -> str:
    """This machine's boot and PID namespace, hashed; ``""`` where /proc cannot tell them.

    Two processes with the same host name may still not see each other's pids (containers of
    one pod), and pids restart after a reboot: a pid says something only within one of these.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except (OSError, UnicodeDecodeError):
        return ""
    return hashlib.sha256(f"{boot}/{pid_ns}".encode()).hexdigest()[:16]


def _new_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}:{_namespace()}:{secrets.token_hex(4)}"


def _holder_is_dead(owner: str | None) -> bool:
    """Whether a lease holder is provably a process that no longer runs this purge: one of this
    host, boot and PID namespace whose pid is gone or belongs to a process started later."""
    if owner is None:
        return False
    parts = owner.rsplit(":", 4)
    if len(parts) != 5:
        return False  # another format (an older version): wait for the lease to expire
    host, pid_text, started, namespace, _ = parts
    if host != socket.gethostname() or not namespace or namespace != _namespace() or not started:
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    now_started = _process_start(pid)
    if pid == os.getpid() and now_started == started:
        return owner not in _LIVE_OWNERS
    if now_started:
        return now_started != started  # the pid now belongs to another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Purger:
    """The handlers that delete an account's data, and the purge jobs that run them.

    Reach it as ``gate.purger``. ``lease`` is how long a job's lease lasts without renewal (it
    is renewed every third of it while a purge runs); ``wait_timeout`` is how long a purge waits
    for another process working on the same account before giving up. ``identifier_kinds`` are
    the identifier kinds a purge accepts (the kinds the app's signup passes to ``gate.signup``);
    any other kind is refused, since blocking it would block nothing.
    """

    def __init__(self, gate: AgeGate) -> None:
        self._gate = gate
        self._handlers: dict[str, _Registered] = {}
        self._listeners: list[Listener] = []
        self._exempt: list[tuple[TableRef, str | None]] = []
        self._subject_format: tuple[re.Pattern[str], str] | None = None
        self._sealer: Sealer | None = None
        self.lease = timedelta(seconds=60)
        self.wait_timeout = timedelta(minutes=10)
        self.poll_interval = 0.05
        self.identifier_kinds: tuple[str, ...] = IDENTIFIER_KINDS

    # -- registry ----------------------------------------------------------------------------

    def handler(
        self, name: str, *, count: Counter | None = None, covers: Iterable[TableRef] = ()
    ) -> Callable[[H], H]:
        """Register ``async def f(subject) -> rows deleted`` under ``name``.

        Handlers run in registration order and must be idempotent (a second run deletes nothing
        more). ``count`` is an optional ``async def (subject) -> rows`` used by dry runs;
        ``covers`` names tables the handler purges (``db.table("orders")``) for the coverage check.
        """

        def register(func: H) -> H:
            self._register(name, func, count, tuple(covers))
            return func

        return register

    def add(
        self,
        handler: PurgeHandler,
        *,
        name: str | None = None,
        count: Counter | None = None,
        covers: Iterable[TableRef] | None = None,
    ) -> PurgeHandler:
        """Register a handler object, such as the built-in :class:`~agegate.handlers.SQLRows`
        or :class:`~agegate.handlers.AccountFiles`; its ``name``, ``count`` and ``covers``
        attributes are used unless given here."""
        resolved = name or getattr(handler, "name", None)
        if not isinstance(resolved, str):
            raise ConfigurationError("this handler has no name: pass name=")
        counter = count if count is not None else getattr(handler, "count", None)
        refs = tuple(covers) if covers is not None else tuple(getattr(handler, "covers", ()))
        self._register(resolved, handler, counter, refs)
        return handler

    def _register(self, name: str, run: Any, count: Any, covers: tuple[TableRef, ...]) -> None:
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ConfigurationError(
                "a handler name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        if name in RESERVED_STEPS:
            raise ConfigurationError(f"{name!r} is the name of a purge step; choose another handler name")
        if name in self._handlers:
            raise ConfigurationError(f"a purge handler named {name!r} is already registered")
        if not callable(run) or (count is not None and not callable(count)):
            raise ConfigurationError(f"purge handler {name!r} must be callable")
        if any(not isinstance(ref, TableRef) for ref in covers):
            raise ConfigurationError("covers= takes tables such as SQLiteDatabase(...).table('orders')")
        self._handlers[name] = _Registered(name, run, count, covers)

    @property
    def names(self) -> tuple[str, ...]:
        """The registered handlers' names, in the order they run."""
        return tuple(self._handlers)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every :class:`PurgeEvent`; returns a function that
        stops it. Listeners run inline: keep them quick."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def exempt(self, table: TableRef, *columns: str) -> None:
        """Tell the coverage check that these columns (or the whole table, with no columns)
        hold no personal data although their names look like it (``products.name``)."""
        if not isinstance(table, TableRef):
            raise ConfigurationError("exempt() takes a table such as SQLiteDatabase(...).table('products')")
        if columns:
            self._exempt.extend((table, column) for column in columns)
        else:
            self._exempt.append((table, None))

    def subject_format(self, pattern: str, description: str) -> None:
        """Refuse purges of account ids that do not fully match ``pattern``; the error says the id
        does not look like ``description`` (e.g. ``"a numeric account id"``)."""
        self._subject_format = (re.compile(pattern), description)

    def _emit(self, kind: Any, job_id: str, step: str, count: int | None = None) -> None:
        event = PurgeEvent(kind, job_id, step, count)
        for listener in list(self._listeners):
            listener(event)

    def _journal(self) -> Sealer:
        if self._sealer is None:
            self._sealer = Sealer(self._gate.keys, "journal")
        return self._sealer

    # -- checks ------------------------------------------------------------------------------

    def check_subject(self, subject: str) -> str:
        """The account id if it is usable, else :class:`ConfigurationError` (which never
        repeats the id)."""
        if not isinstance(subject, str) or not subject or len(subject) > 512:
            raise ConfigurationError("the account id must be 1 to 512 characters")
        if subject != subject.strip() or any(unicodedata.category(ch).startswith("C") for ch in subject):
            raise ConfigurationError(
                "the account id has spaces around it or invisible characters: copy it again"
            )
        if self._subject_format is not None:
            pattern, description = self._subject_format
            if pattern.fullmatch(subject) is None:
                raise ConfigurationError(f"the account id does not look like {description}")
        return subject

    def check_request(
        self, subject: str, ticket: str, operator: str, identifiers: Mapping[str, str] | None = None
    ) -> tuple[str, str, str]:
        """Check a purge's input as :meth:`purge` does, without touching the store; returns the
        account id, ticket and operator as they will be used. Raises :class:`ConfigurationError`."""
        subject = self.check_subject(subject)
        ticket, operator = _label("ticket", ticket), _label("operator", operator)
        self._refuse_pii_in_labels(subject, identifiers, {"ticket": ticket, "operator": operator})
        self.check_identifiers(identifiers)
        return subject, ticket, operator

    def known_kind(self, kind: object) -> str:
        """``kind`` case-folded and trimmed, if it is one of ``identifier_kinds``; else
        :class:`ConfigurationError` (which names the kind only when it looks like one, so that
        a value pasted in its place, an email, never reaches an error message)."""
        if not isinstance(kind, str):
            raise ConfigurationError("identifiers map kinds (email, phone, username) to strings")
        known = {k.strip().lower() for k in self.identifier_kinds}
        folded = kind.strip().lower()
        if folded not in known:
            shown = f" {folded!r}" if _KIND.fullmatch(folded) else ""
            raise ConfigurationError(f"unknown identifier kind{shown}: use one of {', '.join(sorted(known))}")
        return folded

    def check_identifiers(self, identifiers: Mapping[str, str] | None) -> int:
        """Check the identifiers a purge is to block; returns how many distinct ones it blocks.

        Each kind must be one of ``identifier_kinds`` (case and surrounding spaces do not matter)
        and each value must keep something after normalisation (a phone number needs digits).
        Raises :class:`ConfigurationError`, which names the kind but never the value.
        """
        from .gate import normalise_identifier  # gate imports this module

        if identifiers is None:
            return 0
        if not isinstance(identifiers, Mapping):
            raise ConfigurationError("identifiers map kinds (email, phone, username) to strings")
        seen: set[tuple[str, str]] = set()
        for kind, value in identifiers.items():
            folded = self.known_kind(kind)
            if not isinstance(value, str):
                raise ConfigurationError("identifiers map kinds (email, phone, username) to strings")
            normal = normalise_identifier(folded, value)
            if not normal:
                raise ConfigurationError(
                    f"the {folded} identifier is empty"
                    + (" (a phone number needs digits)" if folded == "phone" else "")
                )
            seen.add((folded, normal))
        return len(seen)

    @staticmethod
    def _refuse_pii_in_labels(
        subject: str, identifiers: Mapping[str, str] | None, labels: Mapping[str, str]
    ) -> None:
        # The ticket and operator are kept in the clear in the audit log: they must not
        # smuggle the account id or an identifier into it. Very short values would match by
        # accident, so only values of five characters or more are looked for.
        secrets_ = [subject, *(v for v in (identifiers or {}).values() if isinstance(v, str))]
        for what, text in labels.items():
            folded = text.casefold()
            if any(len(s.strip()) >= 5 and s.strip().casefold() in folded for s in secrets_):
                raise ConfigurationError(
                    f"the {what} must not contain the account id or an identifier: "
                    "use the support system's ticket number and your own name"
                )

    # -- purging -----------------------------------------------------------------------------

    async def purge(
        self,
        subject: str,
        *,
        ticket: str,
        operator: str,
        identifiers: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> PurgeReport:
        """Freeze the account, run every handler, block its identifiers; see the module docs.

        Idempotent: a finished purge of the account returns its report with
        ``already_done=True``. When handlers were registered after the account's purge finished,
        the same job is reopened and runs just those (its finished steps stay done), so the
        audit log and the receipt cover them too. Raises :class:`PurgeError` when a step fails
        (the job is then ``failed`` and resumable) and :class:`ConfigurationError` for unusable
        input.
        """
        subject, ticket, operator = self.check_request(subject, ticket, operator, identifiers)
        subject_hashes = self._gate.subject_hashes(subject)
        identifier_hashes = tuple(self._gate.identifier_hashes(identifiers))
        store = await self._gate.store()
        if dry_run:
            return await self._dry_run(store, subject, subject_hashes, ticket, operator, identifier_hashes)
        job = await store.find_job(subject_hashes)
        if job is not None and job.state == "done" and self._not_run(job):
            # Handlers added since this account's purge finished (a table the coverage check
            # found): the account id is given again, so the same job runs just those.
            reopened = await store.reopen_job(
                job.job_id,
                handlers=self.names,
                sealed_subject=self._journal().seal_bytes(subject.encode("utf-8")),
                identifier_hashes=identifier_hashes,
                now=_now(),
            )
            job = await store.get_job(job.job_id) or job
            if reopened:
                report = await self._drive(store, job, subject, identifier_hashes)
                # Its block step had run already: block identifiers this call adds.
                await self._block(store, identifier_hashes)
                return report
        if job is None:
            now = _now()
            job, _ = await store.create_job(
                PurgeJob(
                    job_id=secrets.token_hex(8),
                    subject_hash=subject_hashes[0],
                    ticket=ticket,
                    operator=operator,
                    handlers=self.names,
                    state="running",
                    created_at=now,
                    updated_at=now,
                    sealed_subject=self._journal().seal_bytes(subject.encode("utf-8")),
                    identifier_hashes=identifier_hashes,
                    steps={POLICY + self._gate.policy.name: 0, SIGNING_KEY + self._gate.keys.active_kid: 0},
                )
            )
        return await self._drive(store, job, subject, identifier_hashes)

    async def resume(self) -> list[PurgeReport]:
        """Finish every unfinished purge job (running with an expired or dead lease, or failed).

        Returns one report per job; a job that failed again has ``state="failed"`` and an
        ``error`` naming the step, instead of raising.
        """
        store = await self._gate.store()
        reports = []
        for job in await store.list_jobs(unfinished_only=True):
            if job.state == "dry_run":
                continue
            try:
                if job.sealed_subject is None:
                    raise PurgeError("the job holds no account id to resume with", job_id=job.job_id)
                try:
                    subject = self._journal().open_bytes(job.sealed_subject).decode("utf-8")
                except (InvalidToken, UnicodeDecodeError):
                    raise PurgeError(
                        f"job {job.job_id} cannot be opened: was its key removed from AGEGATE_SECRET_KEYS?",
                        job_id=job.job_id,
                    ) from None
                # The sealed id must belong to the job's account: a row edited or swapped in the
                # database must not turn a resume into a purge of someone else.
                if job.subject_hash not in self._gate.subject_hashes(subject):
                    raise PurgeError(
                        f"job {job.job_id} does not match its sealed account id; not resuming it",
                        job_id=job.job_id,
                    )
                reports.append(await self._drive(store, job, subject, ()))
            except PurgeError as exc:
                reports.append(
                    PurgeReport(
                        job.job_id,
                        "failed",
                        _handler_steps(job),
                        ticket=job.ticket,
                        error=str(exc),
                    )
                )
        return reports

    async def _dry_run(
        self,
        store: Store,
        subject: str,
        subject_hashes: list[bytes],
        ticket: str,
        operator: str,
        identifier_hashes: tuple[bytes, ...],
    ) -> PurgeReport:
        existing = await store.find_job(subject_hashes)
        job_id = existing.job_id if existing is not None else ""
        counts: dict[str, int] = {}
        uncounted: list[str] = []
        for registered in self._handlers.values():
            if registered.count is None:
                uncounted.append(registered.name)
                self._emit("count", job_id, registered.name, None)
                continue
            try:
                counts[registered.name] = _rows(await registered.count(subject), registered.name)
            except Exception as exc:
                raise PurgeError(
                    f"counting handler {registered.name!r} failed ({type(exc).__name__})"
                ) from None
            self._emit("count", job_id, registered.name, counts[registered.name])
        return PurgeReport(
            job_id,
            "dry_run",
            counts,
            already_done=existing is not None and existing.state == "done",
            ticket=ticket,
            operator=operator,
            identifiers_blocked=self._identifier_count(identifier_hashes),
            uncounted=tuple(uncounted),
            not_run=self._not_run(existing) if existing is not None and existing.state == "done" else (),
        )

    def _identifier_count(self, hashes: Iterable[bytes]) -> int:
        if self._gate.identifier_block <= timedelta(0):
            return 0
        return math.ceil(len(set(hashes)) / len(self._gate.keys.kids))

    async def _drive(
        self, store: Store, job: PurgeJob, subject: str, extra_identifiers: tuple[bytes, ...]
    ) -> PurgeReport:
        if job.state != "done":
            owner = _new_owner()
            _LIVE_OWNERS.add(owner)
            try:
                claimed = await self._acquire(store, job.job_id, owner)
                if claimed is not None:
                    return await self._run(store, claimed, owner, subject, extra_identifiers)
            finally:
                _LIVE_OWNERS.discard(owner)
        finished = await store.get_job(job.job_id)
        if finished is None or finished.state != "done":
            raise PurgeError(f"purge job {job.job_id} did not finish", job_id=job.job_id)
        if extra_identifiers and self._gate.identifier_block > timedelta(0):
            # A repeated purge may name identifiers the first one did not know.
            await store.block_identifiers(
                extra_identifiers, until=_now() + self._gate.identifier_block, kids=self._gate.keys.kids
            )
        return self._report(finished, already_done=True, not_run=self._not_run(finished))

    async def _acquire(self, store: Store, job_id: str, owner: str) -> PurgeJob | None:
        """Take the job's lease, waiting while another live process holds it. Returns the job,
        or ``None`` when it was finished meanwhile by someone else."""
        deadline = time.monotonic() + self.wait_timeout.total_seconds()
        announced = False
        while True:
            current = await store.get_job(job_id)
            if current is None:
                raise PurgeError(f"purge job {job_id} is no longer in the journal", job_id=job_id)
            if current.state == "done":
                return None
            now = _now()
            takeover = current.lease_owner if _holder_is_dead(current.lease_owner) else None
            if await store.claim_job(job_id, owner=owner, until=now + self.lease, now=now, takeover=takeover):
                return await store.get_job(job_id)
            if not announced:
                self._emit("wait", job_id, "lease")
                announced = True
            if time.monotonic() > deadline:
                raise PurgeError(
                    f"another process is still running purge job {job_id}; try again later",
                    job_id=job_id,
                )
            await asyncio.sleep(self.poll_interval)

    async def _heartbeat(self, store: Store, job_id: str, owner: str, since: float) -> None:
        # Renewals go on until the purge stops this task. A failed renewal (a locked database, a
        # dropped connection) is retried sooner; a lost lease is noticed by record_step and
        # finish_job, which refuse to write for an owner that no longer holds it.
        lease = self.lease.total_seconds()
        interval = lease / 3
        last = since  # when the lease was last renewed (or taken), on the monotonic clock
        while True:
            await asyncio.sleep(max(0.0, last + interval - time.monotonic()))
            stalled = time.monotonic() - last - interval
            if stalled > lease / 2:
                _log.warning(
                    "purge job %s: the event loop was blocked for %.1f s (the lease lasts %.1f s), so "
                    "another process may have taken the job over. A purge handler must not block the "
                    "event loop: call blocking code with asyncio.to_thread",
                    job_id,
                    stalled,
                    lease,
                )
            last = time.monotonic()
            now = _now()
            try:
                await store.claim_job(job_id, owner=owner, until=now + self.lease, now=now)
                interval = lease / 3
            except Exception as exc:
                _log.warning(
                    "purge job %s: renewing its lease failed (%s); retrying", job_id, type(exc).__name__
                )
                interval = lease / 9

    async def _run(
        self, store: Store, job: PurgeJob, owner: str, subject: str, extra_identifiers: tuple[bytes, ...]
    ) -> PurgeReport:
        missing = [name for name in job.handlers if name not in self._handlers]
        Step = Callable[[], Awaitable[int]]
        plan: list[tuple[str, Step, Step | None]] = [(FREEZE, lambda: self._freeze(subject), None)]
        plan += [(r.name, _call(r.run, subject), _bind(r.count, subject)) for r in self._handlers.values()]
        identifiers = tuple(dict.fromkeys(job.identifier_hashes + extra_identifiers))
        plan.append((BLOCK, lambda: self._block(store, identifiers), None))
        heartbeat = asyncio.create_task(self._heartbeat(store, job.job_id, owner, time.monotonic()))
        step = FREEZE
        try:
            if missing:
                raise _StepFailed(
                    f"handler {missing[0]!r} of this job is not registered in the app; "
                    "register it again, then resume"
                )
            for step, run, counter in plan:
                if step in job.steps:
                    self._emit("skip", job.job_id, step, job.steps[step])
                    continue
                self._emit("start", job.job_id, step)
                # A handler that can count is counted first, and the count journalled: the account
                # is frozen, so nothing new arrives, and if this run is interrupted half-way the
                # resumed run still reports everything deleted, not just the rest.
                interrupted_before = job.steps.get(PLANNED + step)
                if counter is not None and interrupted_before is None:
                    planned = _rows(await counter(), step)
                    if not await store.record_step(
                        job.job_id, owner=owner, step=PLANNED + step, count=planned, now=_now()
                    ):
                        raise _LostLease()
                    job.steps[PLANNED + step] = planned
                count = _rows(await run(), step)
                if interrupted_before is not None:
                    count = max(count, interrupted_before)
                if not await store.record_step(job.job_id, owner=owner, step=step, count=count, now=_now()):
                    raise _LostLease()
                job.steps[step] = count
                self._emit("done", job.job_id, step, count)
            # The heartbeat must be stopped before the job is finished: a renewal landing after
            # finish_job("failed") would otherwise take the released lease again.
            await _stop(heartbeat)
            if not await store.finish_job(job.job_id, owner=owner, state="done", now=_now()):
                raise _LostLease()
        except _LostLease:
            raise PurgeError(
                f"another process took over purge job {job.job_id}; it will finish it", job_id=job.job_id
            ) from None
        except Exception as exc:
            what = "step" if step in RESERVED_STEPS else "handler"
            reason = (
                str(exc) if isinstance(exc, _StepFailed) else f"{what} {step!r} failed ({type(exc).__name__})"
            )
            await _stop(heartbeat)
            # If even this fails the job stays "running"; its lease lapses and resume finishes it.
            with contextlib.suppress(Exception):
                await store.finish_job(job.job_id, owner=owner, state="failed", now=_now(), error=reason)
            raise PurgeError(
                f"{reason}; fix the cause, then finish purge job {job.job_id} with `agegate purge --resume`",
                job_id=job.job_id,
            ) from None
        finally:
            await _stop(heartbeat)
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
            _handler_steps(job),
            already_done=already_done,
            ticket=job.ticket,
            operator=job.operator,
            finished_at=job.finished_at,
            identifiers_blocked=job.steps.get(BLOCK, 0),
            error=job.error,
            not_run=not_run,
        )

    # -- audit, receipts, coverage -----------------------------------------------------------

    async def jobs(self) -> list[PurgeJob]:
        """Every purge job in the journal, oldest first (the audit log)."""
        store = await self._gate.store()
        return await store.list_jobs()

    async def find(self, *, job_id: str | None = None, ticket: str | None = None) -> PurgeJob | None:
        """The job with this id, or the latest job for this ticket."""
        store = await self._gate.store()
        if job_id is not None:
            return await store.get_job(job_id)
        matches = [job for job in await store.list_jobs() if job.ticket == ticket]
        return matches[-1] if matches else None

    def receipt(self, job: PurgeJob) -> str:
        """The signed deletion receipt (JSON text) of a finished job; see :mod:`agegate.receipts`."""
        if job.state != "done" or job.finished_at is None:
            raise PurgeError(f"purge job {job.job_id} is not finished: no receipt yet", job_id=job.job_id)
        report = self._report(job, already_done=True)
        kid = _note(job, SIGNING_KEY)
        return make_receipt(
            self._gate.keys,
            job_id=job.job_id,
            ticket=job.ticket,
            completed_at=job.finished_at,
            deleted=report.deleted,
            policy=job_policy(job) or self._gate.policy.name,
            kid=kid if kid in self._gate.keys.kids else None,
            identifiers_blocked=report.identifiers_blocked,
        )

    async def coverage(self) -> tuple[list[Uncovered], int]:
        """Personal-looking columns of the handlers' SQL databases that no handler purges, and
        the number of tables checked; see :mod:`agegate.coverage`."""
        refs = [ref for registered in self._handlers.values() for ref in registered.covers]
        return await find_uncovered(refs, self._exempt)


def _handler_steps(job: PurgeJob) -> dict[str, int]:
    """The job's finished handlers and their counts (no fixed steps, no notes)."""
    return {n: c for n, c in job.steps.items() if n not in RESERVED_STEPS and not n.startswith(_NOTES)}


def _note(job: PurgeJob, prefix: str) -> str | None:
    for step in job.steps:
        if step.startswith(prefix):
            return step[len(prefix) :]
    return None


def job_policy(job: PurgeJob) -> str | None:
    """The name of the age policy in force when ``job`` began (``None`` for jobs journalled
    before agegate recorded it)."""
    return _note(job, POLICY)


async def _stop(task: asyncio.Task[None]) -> None:
    # The heartbeat's own outcome does not matter: losing the lease is detected by record_step
    # and finish_job. asyncio.wait does not raise the task's exception, but a cancellation of
    # this purge still propagates.
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


class _StepFailed(Exception):
    pass


class _LostLease(Exception):
    pass


def _call(func: Handler, subject: str) -> Callable[[], Awaitable[int]]:
    return lambda: func(subject)


def _bind(func: Handler | None, subject: str) -> Callable[[], Awaitable[int]] | None:
    return None if func is None else _call(func, subject)


def _rows(value: object, step: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _StepFailed(f"handler {step!r} returned {type(value).__name__}, not a count of rows deleted")
    return value
