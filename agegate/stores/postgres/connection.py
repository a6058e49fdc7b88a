"""The PostgreSQL store's connections: the pool, one transaction per call, deadlines, outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ...errors import StoreError, StoreUnavailable
from .url import PostgresURL

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    Conn = AsyncConnection[tuple[Any, ...]]

__all__ = ["CONNECT_TIMEOUT", "TIMEOUT", "PostgresConnection", "logger"]

T = TypeVar("T")

#: libpq's ``connect_timeout`` when the URL gives none, in seconds.
CONNECT_TIMEOUT = 5
#: Seconds one call may take by default before :class:`~agegate.StoreUnavailable`.
TIMEOUT = 2.0
#: The share of a call's time after which its connection is cut, leaving the rest for the
#: call to unwind and report.
_CUT_AT = 0.9
_RETRIES = 5  # serialization failures and deadlocks are retried this many times

logger = logging.getLogger("agegate.stores.postgres")
# SQLSTATE classes meaning the server cannot serve now: connection exception, insufficient
# resources (disk full, too many connections), operator intervention (shutdown, statement
# timeout), system error (I/O).
_OUTAGE_CLASSES = ("08", "53", "57", "58")
_READ_ONLY_TRANSACTION = "25006"  # a standby, or a server set read-only

_MISSING = "the PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'agegate[postgres]'"


def _psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - checked here so that open() cannot fail on it later
    except ImportError:
        raise StoreError(_MISSING) from None
    return psycopg


class PostgresConnection:
    """The store's pool and the way every call runs on it; the parts of :class:`.PostgresStore`
    reach the database only through :meth:`_run`."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise StoreError("the PostgreSQL store's timeout is a number of seconds above 0, at most 300")
        self.timeout = float(timeout)
        self._psycopg = _psycopg()
        self._parsed = PostgresURL(url)
        try:
            self._params = self._psycopg.conninfo.conninfo_to_dict(self._parsed.conninfo)
        except self._psycopg.ProgrammingError:
            raise StoreError(
                f"the PostgreSQL store URL {self._parsed.safe!r} cannot be parsed by libpq"
            ) from None
        self.url = self._parsed.safe
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listen_conn: Conn | None = None
        self._open_lock: asyncio.Lock | None = None
        self._schema = ""  # the schema holding the tables, known once open
        self._revision = 0
        self._listening = False
        self._listener_pid: int | None = None
        self._down = False  # the server could not be reached: make sure it is back before use
        self._revival: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()  # replaced pools, closing

    # -- connections ---------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) if diag is not None else None
        text = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        kind = StoreUnavailable if self._is_outage(exc) else StoreError
        return kind(f"PostgreSQL store {self.url}: {doing} failed: {self._parsed.scrub(text)}")

    def _is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server cannot serve now, rather than a mistake in a call."""
        state = getattr(exc, "sqlstate", None) or ""
        if state == _READ_ONLY_TRANSACTION or state[:2] in _OUTAGE_CLASSES:
            return True
        # No SQLSTATE: raised by the client (a lost connection, a pool timeout).
        return isinstance(exc, self._psycopg.OperationalError) and not state

    def _unavailable(self, why: str) -> StoreUnavailable:
        return StoreUnavailable(f"PostgreSQL store {self.url}: {why}")

    @contextlib.contextmanager
    def _watch(self, conn: Conn, deadline: float) -> Iterator[list[bool]]:
        """Cut ``conn`` at ``deadline`` (event loop time) if the block is still running; the
        yielded list holds ``True`` once it has been cut."""
        cut: list[bool] = []

        def fire() -> None:
            cut.append(True)
            _sever(conn)

        handle = asyncio.get_running_loop().call_at(deadline, fire)
        try:
            yield cut
        finally:
            handle.cancel()

    def _connect_kwargs(self, application_name: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self._params:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in self._params:
            kwargs["application_name"] = application_name
        return kwargs

    async def _configure(self, conn: Conn) -> None:
        if self._parsed.schema is not None:
            await conn.execute("SELECT set_config('search_path', %s, false)", (self._parsed.schema,))

    async def _configure_pooled(self, conn: Conn) -> None:
        await self._configure(conn)
        # The server gives up a statement the client has stopped waiting for (a lock wait
        # behind a stuck transaction), unless the URL's options chose a limit of their own.
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, false) "
            "WHERE current_setting('statement_timeout') = '0'",
            (f"{max(1, round(self.timeout * 1000))}ms",),
        )

    def _make_pool(self) -> AsyncConnectionPool[Conn]:
        from psycopg_pool import AsyncConnectionPool

        return AsyncConnectionPool(
            self._parsed.conninfo,
            kwargs=self._connect_kwargs("agegate"),
            min_size=self._parsed.pool_min_size,
            max_size=self._parsed.pool_max_size,
            open=False,
            configure=self._configure_pooled,
            name="agegate",
            timeout=self._parsed.pool_timeout,
        )

    async def _connect(self, application_name: str) -> Conn:
        psycopg = self._psycopg
        try:
            conn = cast(
                "Conn",
                await psycopg.AsyncConnection.connect(
                    self._parsed.conninfo, **self._connect_kwargs(application_name)
                ),
            )
        except psycopg.Error as exc:
            raise self._error(exc, "connecting") from None
        try:
            await self._configure(conn)
        except psycopg.Error as exc:
            await conn.close()
            raise self._error(exc, "connecting") from None
        return conn

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], *, single: bool = False) -> T:
        """Run ``fn`` in one transaction on a pooled connection, retrying a serialization failure
        or a deadlock, within the store's ``timeout``. ``single``: ``fn`` runs one statement,
        which is a transaction of its own (no ``BEGIN``/``COMMIT`` round trips), and which may
        run again if its connection turns out to be dead.

        A pooled connection is not checked before use (that would cost a round trip on every
        call): one that died while idle (a server restart, an idle timeout) fails on its first
        statement, which nothing has then committed, and the call goes on with another one."""
        psycopg = self._psycopg
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout * _CUT_AT
        pool = await self._usable_pool(deadline)
        attempt = lost = 0
        while True:
            attempt += 1
            cut: list[bool] = []
            conn: Conn | None = None
            started = False  # a statement of the call's own has reached the server
            try:
                wait = min(self._parsed.pool_timeout, deadline - loop.time())
                async with pool.connection(timeout=wait) as conn:
                    with self._watch(conn, deadline) as cut:
                        if single:
                            return await fn(conn)
                        async with conn.transaction():
                            started = True
                            return await fn(conn)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
                if attempt >= _RETRIES or loop.time() >= deadline:
                    raise self._error(exc, "a transaction") from None
                await asyncio.sleep(0.005 * attempt)
            except psycopg.Error as exc:
                dead = conn is not None and conn.broken and not cut and not started
                if dead and lost <= self._parsed.pool_max_size and loop.time() < deadline:
                    lost += 1  # died while idle in the pool: the pool drops it; try another
                    continue
                if cut or self._is_outage(exc):
                    self._mark_down(pool)
                if cut:
                    raise self._unavailable(f"no answer within {self.timeout:g} seconds") from None
                raise self._error(exc, "a query") from None

    def _mark_down(self, pool: AsyncConnectionPool[Conn]) -> None:
        if pool is self._pool and not self._down:
            logger.warning("agegate: the PostgreSQL store cannot be reached; calls fail until it is back")
            self._down = True

    async def _usable_pool(self, deadline: float) -> AsyncConnectionPool[Conn]:
        """The pool, once the server is known to answer: after an outage, one fresh connection
        must work first (made once, however many calls wait for it)."""
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open: call `await store.open()` first")
        if not self._down:
            return pool
        revival = self._revival
        if revival is None or revival.done():
            revival = self._revival = asyncio.ensure_future(self._revive())
            revival.add_done_callback(_retrieved)
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(revival)
        except TimeoutError:
            raise self._unavailable(f"the server did not answer within {self.timeout:g} seconds") from None
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is closed")
        return pool

    async def _revive(self) -> None:
        """Connect once; if that works, put a fresh pool in place of the one whose connections
        (and reconnection back-off) date from the outage, and close the old one aside."""
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connect("agegate")
        except TimeoutError:
            raise self._unavailable(f"the server did not answer within {self.timeout:g} seconds") from None
        await conn.close()
        old = self._pool
        if old is None:  # closed meanwhile
            return
        pool = self._make_pool()
        await pool.open(wait=False)
        self._pool = pool
        self._down = False
        logger.info("agegate: the PostgreSQL store is back")
        retiring = asyncio.ensure_future(old.close(timeout=self.timeout))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retired)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        _retrieved(task)


def _sever(conn: Conn) -> None:
    """Shut the connection's socket down, so that everything waiting on it fails at once (a
    closed socket reads as end of file) instead of waiting on a server that does not answer."""
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed
        return
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A done-callback: take a background task's exception, so that it is not reported as lost."""
    if not task.cancelled():
        task.exception()
