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

The package's modules: :mod:`~agegate.purge.registry` (handlers, listeners, exemptions),
:mod:`~agegate.purge.request` (input checks), :mod:`~agegate.purge.lease`,
:mod:`~agegate.purge.runner` (:class:`Purger`), :mod:`~agegate.purge.driver` (one job's
steps under its lease), :mod:`~agegate.purge.report`,
:mod:`~agegate.purge.journal`, :mod:`~agegate.purge.catalog` and :mod:`~agegate.purge.plan`
(what a database's catalog says, and the purge planned from it),
:mod:`~agegate.purge.relational` (the relational account handler) and
:mod:`~agegate.purge.receipts`.
"""

from ..errors import PurgeError
from .journal import BLOCK, FREEZE, NOTES, PLANNED, POLICY, RESERVED_STEPS, SIGNING_KEY, job_policy
from .registry import Counter, Handler, PurgeHandler
from .report import Listener, PlanStep, PurgeEvent, PurgeReport
from .request import IDENTIFIER_KINDS
from .runner import Purger

__all__ = [
    "BLOCK",
    "FREEZE",
    "IDENTIFIER_KINDS",
    "NOTES",
    "PLANNED",
    "POLICY",
    "RESERVED_STEPS",
    "SIGNING_KEY",
    "Counter",
    "Handler",
    "Listener",
    "PlanStep",
    "PurgeError",
    "PurgeEvent",
    "PurgeHandler",
    "PurgeReport",
    "Purger",
    "job_policy",
]
