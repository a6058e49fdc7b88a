"""Opening and closing the PostgreSQL store, and its change signal (``LISTEN``/``NOTIFY``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ...errors import StoreError
from .connection import PostgresConnection, logger
from .schema import migrate

if TYPE_CHECKING:
    from .connection import Conn

__all__ = ["CHANNEL", "LISTEN_CHECK_INTERVAL", "OPEN_TIMEOUT", "PostgresLifecycle"]

#: The ``LISTEN``/``NOTIFY`` channel of the change signal.
CHANNEL = "agegate_revision"
#: How often the ``LISTEN`` connection is checked when no notification arrives, in seconds.
LISTEN_CHECK_INTERVAL = 15.0
#: Seconds opening (migrating) may take before :class:`~agegate.StoreUnavailable`.
OPEN_TIMEOUT = 30.0


class PostgresLifecycle(PostgresConnection):
    """Opening, closing, and the change counter fed by the ``LISTEN`` connection."""

    async def open(self) -> None:
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is None:
                await self._open()

    async def _open(self) -> None:
        psycopg = self._psycopg
        conn = await self._connect("agegate-listen")
        try:
            # Longer than a call: the migration may wait for another instance's.
            with self._watch(conn, asyncio.get_running_loop().time() + OPEN_TIMEOUT) as cut:
                try:
                    await self._migrate(conn)
                    await conn.execute(f"LISTEN {CHANNEL}")
                except psycopg.Error as exc:
                    if cut:
                        raise self._unavailable(f"opening took over {OPEN_TIMEOUT:g} seconds") from None
                    raise self._error(exc, "opening") from None
            pool = self._make_pool()
            try:
                await pool.open(wait=True, timeout=self._parsed.pool_timeout)
            except psycopg.Error as exc:
                await pool.close()
                raise self._error(exc, "opening the connection pool") from None
        except BaseException:
            await conn.close()
            raise
        self._pool = pool
        self._down = False
        self._listening = True
        self._listener_pid = conn.info.backend_pid
        self._listen_conn = conn
        self._listener = asyncio.create_task(self._listen(), name="agegate-postgres-listen")

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        revival, self._revival = self._revival, None
        pool, self._pool = self._pool, None
        self._listening = False
        for task in (listener, revival):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await task
        retiring, self._retiring = self._retiring, set()
        for task in retiring:
            with contextlib.suppress(Exception):
                await task
        # Also when the listener was cancelled before it ever ran.
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            await conn.close()
        if pool is not None:
            await pool.close()

    async def _migrate(self, conn: Conn) -> None:
        self._schema = await migrate(conn, self._parsed.schema, self.url)

    # -- change signal -----------------------------------------------------------------------

    def revision(self) -> int:
        """The change counter: bumped by every ``NOTIFY`` from any instance, and on every read
        while the ``LISTEN`` connection is down (caches are then never trusted)."""
        if not self._listening:
            self._revision += 1
        return self._revision

    async def bump_revision(self) -> None:
        self._revision += 1

        async def run(conn: Conn) -> None:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._schema))

        await self._run(run)

    async def _listen(self) -> None:
        """Count notifications on the ``LISTEN`` connection; when it drops, reconnect (with a
        growing pause) and bump the counter, since notifications may have been missed meanwhile."""
        delay = 0.05
        while True:
            try:
                conn = self._listen_conn
                if conn is None:
                    conn = self._listen_conn = await self._connect("agegate-listen")
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listener_pid = conn.info.backend_pid
                    self._revision += 1
                    self._listening = True
                    logger.info("agegate: the PostgreSQL LISTEN connection is back")
                    delay = 0.05
                while True:
                    async for notify in conn.notifies(timeout=LISTEN_CHECK_INTERVAL):
                        if notify.payload == self._schema:
                            self._revision += 1
                    # A silent connection may be a dead one: cut it if it does not answer.
                    with self._watch(conn, asyncio.get_running_loop().time() + self.timeout):
                        await conn.execute("SELECT 1")
            except Exception as exc:  # any failure: drop caches, reconnect
                if self._listening:
                    logger.warning(
                        "agegate: the PostgreSQL LISTEN connection failed (%s); status caches are "
                        "bypassed until it is back",
                        type(exc).__name__,
                    )
                self._listening = False
                self._revision += 1
                conn, self._listen_conn = self._listen_conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
