"""``postgresql://…``: the store for several app instances sharing one PostgreSQL database.

Needs ``pip install 'agegate[postgres]'`` (psycopg 3 and psycopg_pool, imported only when a
PostgreSQL store is made). Calls run on a pool of connections
(:class:`psycopg_pool.AsyncConnectionPool`), each call one transaction. Tables are named
``agegate_…`` so that the store can live in an app's own database; ``?schema=name`` puts them
in their own schema instead (created when missing), otherwise they go in the first schema of
the connection's ``search_path``. The schema version is
kept in ``agegate_meta`` and migrated forward on open under a transaction-level advisory lock, so
instances starting together do not race; ``agegate_…`` tables that agegate did not make are
refused with a :class:`~agegate.StoreError`.

Purge leases are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``: a claimer never queues behind
another instance that is working on the same job. The change signal is ``NOTIFY
agegate_revision`` (payload: the schema name); every store keeps one ``LISTEN`` connection
that bumps an in-process counter, so :meth:`PostgresStore.revision` is an attribute read. While
that connection is down the counter changes on every read (every status cache is dropped) until
it is back.

Query options taken by agegate and not passed to libpq: ``schema``, ``pool_min_size`` (default
1), ``pool_max_size`` (default 10) and ``pool_timeout`` (seconds to wait for a free connection,
default 30, and never longer than the call's ``timeout``). Everything else (``sslmode``,
``connect_timeout``, ``options``…) goes to libpq. The password never appears in
:attr:`PostgresStore.url`, in ``repr()`` or in an error message.

Outages. Every call answers within ``timeout`` seconds (default 2; :class:`~agegate.AgeGate`
passes its ``store_timeout``) or raises :class:`~agegate.StoreUnavailable`: the wait for a pooled
connection is bounded, a connection that does not answer in time is cut (its socket shut down,
so that nothing waits on it any longer), and the server is asked to give up statements that run
longer (``statement_timeout``, unless the URL's ``options`` set one). After a failure that means
the server cannot be reached, the next call first makes one fresh connection; once that works
the pool is replaced by a new one, so service returns as soon as the server does, without the
pool's reconnection back-off.
"""

from __future__ import annotations

from .connection import CONNECT_TIMEOUT, TIMEOUT
from .lifecycle import CHANNEL, LISTEN_CHECK_INTERVAL, OPEN_TIMEOUT
from .schema import APPLICATION, SCHEMA_VERSION
from .store import PostgresStore
from .url import PostgresURL

__all__ = [
    "APPLICATION",
    "CHANNEL",
    "CONNECT_TIMEOUT",
    "LISTEN_CHECK_INTERVAL",
    "OPEN_TIMEOUT",
    "SCHEMA_VERSION",
    "TIMEOUT",
    "PostgresStore",
    "PostgresURL",
]
