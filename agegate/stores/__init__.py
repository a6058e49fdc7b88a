"""Stores: where agegate keeps hashed attestations, identifier blocks and the purge journal."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import StoreError
from .base import AttestationRecord, JobState, PurgeJob, Store
from .memory import MemoryStore

__all__ = ["AttestationRecord", "JobState", "MemoryStore", "PurgeJob", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Make the store for ``url``: ``memory://``, ``sqlite:///path`` or ``postgresql://…``.

    The store is connected (and its schema created or migrated) by ``await store.open()``,
    which :class:`~agegate.AgeGate` does on first use.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StoreError("a store URL looks like memory://, sqlite:///path/to/file or postgresql://…")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        raise StoreError("the PostgreSQL store is not available yet; use sqlite:///path for now")
    raise StoreError(f"unknown store scheme {scheme!r}: use memory://, sqlite:///path or postgresql://…")
