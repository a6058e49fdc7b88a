"""The SQLite store, put together from its parts."""

from __future__ import annotations

from .attestations import SQLiteAttestations
from .flags import SQLiteFlags
from .jobs import SQLiteJobs
from .keys import SQLiteKeys
from .reports import SQLiteReports

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLiteAttestations, SQLiteFlags, SQLiteKeys, SQLiteJobs, SQLiteReports):
    """The store behind ``sqlite:///path``; :mod:`agegate.stores.sqlite` says what it guarantees."""

    #: :meth:`swap_attestation` takes ``blocks`` and ``now`` (see :func:`.add_attestation`).
    swaps_unless_blocked = True

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"
