"""The PostgreSQL store, put together from its parts."""

from __future__ import annotations

from .attestations import PostgresAttestations
from .flags import PostgresFlags
from .jobs import PostgresJobs
from .keys import PostgresKeys
from .lifecycle import PostgresLifecycle
from .reports import PostgresReports

__all__ = ["PostgresStore"]


class PostgresStore(
    PostgresLifecycle, PostgresAttestations, PostgresFlags, PostgresKeys, PostgresJobs, PostgresReports
):
    """The store behind ``postgresql://…``; :mod:`agegate.stores.postgres` says what it guarantees.

    ``url`` is the URL without its password.
    """

    #: :meth:`swap_attestation` takes ``blocks`` and ``now`` (see :func:`.add_attestation`).
    swaps_unless_blocked = True

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
