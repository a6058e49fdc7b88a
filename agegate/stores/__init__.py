"""Stores: where agegate keeps hashed attestations, identifier blocks and the purge journal."""

from __future__ import annotations

from ..errors import StoreError
from .base import (
    REPORT_STATES,
    AttestationRecord,
    JobState,
    KeyUse,
    PurgeJob,
    ReportRecord,
    ReportState,
    SignupWrite,
    Store,
    add_attestation,
)
from .memory import MemoryStore

__all__ = [
    "REPORT_STATES",
    "AttestationRecord",
    "JobState",
    "KeyUse",
    "MemoryStore",
    "PurgeJob",
    "ReportRecord",
    "ReportState",
    "SignupWrite",
    "Store",
    "add_attestation",
    "open_store",
]


def open_store(url: str, *, timeout: float | None = None) -> Store:
    """Make the (not yet opened) store for ``url``.

    - ``sqlite:///relative/path`` (relative to the working directory) or
      ``sqlite:////absolute/path``: the embedded default, one SQLite file in WAL mode, safe for
      several worker processes on one host; see :mod:`agegate.stores.sqlite`.
    - ``memory://``: in-process dictionaries, for tests; nothing survives the process.
    - ``postgresql://…`` / ``postgres://…``: several app instances sharing one PostgreSQL
      database (needs ``pip install 'agegate[postgres]'``); see :mod:`agegate.stores.postgres`.

    An unknown scheme or a malformed URL raises :class:`~agegate.StoreError`. The store is
    connected, and its schema created or migrated forward, by ``await store.open()``, which
    :class:`~agegate.AgeGate` does on first use; a file that is not an agegate database is
    refused then, also with :class:`~agegate.StoreError`.

    ``timeout`` bounds each call of a networked store (PostgreSQL): one that cannot answer in
    time raises :class:`~agegate.StoreUnavailable`. :class:`~agegate.AgeGate` passes its
    ``store_timeout``.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StoreError("a store URL looks like memory://, sqlite:///path/to/file or postgresql://…")
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url) if timeout is None else PostgresStore(url, timeout=timeout)
    raise StoreError(f"unknown store scheme {scheme!r}: use memory://, sqlite:///path or postgresql://…")
