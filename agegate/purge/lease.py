"""Leases on purge jobs: who holds one, when a holder is provably gone, taking and renewing one.

One process at a time works on a job: it holds a lease (``host:pid:start:namespace:random``)
that it renews while it runs, retrying a renewal that fails. Another purge of the same account
waits for it. A lease is taken over at once only when its holder provably no longer runs: same
host, same boot and PID namespace (so not a process in another container that shares the host
name), and that pid is gone or now belongs to a process started at another time. Any other
lease is taken over when it expires.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..errors import PurgeError
from ..stores import PurgeJob, Store

__all__ = [
    "LIVE_OWNERS",
    "acquire",
    "heartbeat",
    "holder_is_dead",
    "namespace",
    "new_owner",
    "now",
    "process_start",
    "stop",
]

#: Owners of leases held by purges running in this process (a lease of this pid not listed
#: here was left by a purge that was cancelled, and may be taken over).
LIVE_OWNERS: set[str] = set()
_log = logging.getLogger("agegate.purge")


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), or ``""`` if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: count fields after its ")".
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else ""


@functools.cache
def namespace() -> str:
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


def new_owner() -> str:
    """A lease owner naming this process (see the module docs for the format)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}:{namespace()}:{secrets.token_hex(4)}"


def holder_is_dead(owner: str | None) -> bool:
    """Whether a lease holder is provably a process that no longer runs this purge: one of this
    host, boot and PID namespace whose pid is gone or belongs to a process started later."""
    if owner is None:
        return False
    parts = owner.rsplit(":", 4)
    if len(parts) != 5:
        return False  # another format (an older version): wait for the lease to expire
    host, pid_text, started, owner_namespace, _ = parts
    if host != socket.gethostname() or not owner_namespace or owner_namespace != namespace() or not started:
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    now_started = process_start(pid)
    if pid == os.getpid() and now_started == started:
        return owner not in LIVE_OWNERS
    if now_started:
        return now_started != started  # the pid now belongs to another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


async def acquire(
    store: Store,
    job_id: str,
    owner: str,
    *,
    lease: timedelta,
    wait_timeout: timedelta,
    poll_interval: float,
    on_wait: Callable[[], None],
) -> PurgeJob | None:
    """Take the job's lease, waiting while another live process holds it (calling ``on_wait``
    once). Returns the job, or ``None`` when it was finished meanwhile by someone else."""
    deadline = time.monotonic() + wait_timeout.total_seconds()
    announced = False
    while True:
        current = await store.get_job(job_id)
        if current is None:
            raise PurgeError(f"purge job {job_id} is no longer in the journal", job_id=job_id)
        if current.state == "done":
            return None
        at = now()
        takeover = current.lease_owner if holder_is_dead(current.lease_owner) else None
        if await store.claim_job(job_id, owner=owner, until=at + lease, now=at, takeover=takeover):
            return await store.get_job(job_id)
        if not announced:
            on_wait()
            announced = True
        if time.monotonic() > deadline:
            raise PurgeError(
                f"another process is still running purge job {job_id}; try again later", job_id=job_id
            )
        await asyncio.sleep(poll_interval)


async def heartbeat(store: Store, job_id: str, owner: str, since: float, lease_length: timedelta) -> None:
    """Renew the lease every third of its length until cancelled (see :func:`stop`)."""
    # Renewals go on until the purge stops this task. A failed renewal (a locked database, a
    # dropped connection) is retried sooner; a lost lease is noticed by record_step and
    # finish_job, which refuse to write for an owner that no longer holds it.
    lease = lease_length.total_seconds()
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
        at = now()
        try:
            await store.claim_job(job_id, owner=owner, until=at + lease_length, now=at)
            interval = lease / 3
        except Exception as exc:
            _log.warning("purge job %s: renewing its lease failed (%s); retrying", job_id, type(exc).__name__)
            interval = lease / 9


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel the heartbeat ``task`` and wait for it to end."""
    # The heartbeat's own outcome does not matter: losing the lease is detected by record_step
    # and finish_job. asyncio.wait does not raise the task's exception, but a cancellation of
    # this purge still propagates.
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()
