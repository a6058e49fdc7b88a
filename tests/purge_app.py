"""A small app for purge tests: SQLite tables, per-account files and a gate on a SQLite store.

``seed(directory)`` writes the data of three accounts; ``build_gate(directory)`` makes the gate
with its handlers. ``--app purge_app:gate`` builds it from the environment:

- ``PURGE_APP_DIR``: the data directory (required);
- ``PURGE_APP_STORE``: the store URL (default: ``agegate.sqlite3`` in the directory);
- ``PURGE_APP_PAUSE``: a point at which to stop (``before:STEP`` / ``after:STEP`` around a step,
  ``entered:NAME`` as a handler starts, after its planned count was journalled and before it
  deletes anything, ``mid:orders`` inside the orders transaction, ``mid:files`` between two file sets,
  ``committed:profiles`` after the profiles rows are committed but before the step is journalled);
  on reaching it the app creates the file ``PURGE_APP_MARKER`` and then waits for the file
  ``PURGE_APP_RELEASE`` (if set) or simply hangs until killed, at most a minute;
- every handler call appends the handler's name to ``calls.log`` in the directory;
- ``PURGE_APP_FAIL``: a handler name that raises ``RuntimeError`` (message with the account id,
  to prove it never reaches the output).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agegate import AgeGate, Keyring
from agegate.handlers import AccountFiles, SQLiteDatabase
from agegate.purge import PurgeEvent

ACCOUNTS = ("acct-1001", "acct-1002", "acct-1003")
CHILD = "acct-1001"
CHILD_EMAIL = "kid.1001@example.org"
STEPS = ("freeze", "profiles", "orders", "files", "block_identifiers")


def seed(directory: Path) -> None:
    """Three accounts' rows and files; the same bytes every time."""
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(directory / "app.sqlite3")) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE profiles (account_id TEXT PRIMARY KEY, email TEXT, display_name TEXT, avatar BLOB);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, total_cents INTEGER);
            CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, sku TEXT);
            CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT);
            """
        )
        for n, account in enumerate(ACCOUNTS):
            conn.execute(
                "INSERT INTO profiles VALUES (?, ?, ?, ?)",
                (account, f"kid.{account[5:]}@example.org", f"Player {n}", bytes([n]) * 16),
            )
            for k in range(2 + n):
                order = conn.execute(
                    "INSERT INTO orders (account_id, total_cents) VALUES (?, ?)", (account, 100 * k + n)
                ).lastrowid
                conn.executemany(
                    "INSERT INTO order_items (order_id, sku) VALUES (?, ?)",
                    [(order, f"sku-{n}-{k}-{i}") for i in range(2)],
                )
        conn.execute("INSERT INTO products (name) VALUES ('Dice')")
    for account in ACCOUNTS:
        (directory / "files" / account).mkdir(parents=True, exist_ok=True)
        (directory / "files" / account / "notes.txt").write_bytes(f"notes of {account}\n".encode())
        (directory / "files" / account / "drawing.bin").write_bytes(account.encode() * 3)
        (directory / "files" / "avatars").mkdir(exist_ok=True)
        (directory / "files" / "avatars" / f"{account}.png").write_bytes(b"\x89PNG" + account.encode())


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the test (TimeoutError) if it runs longer than ``seconds``: a lease bug would
    otherwise make a purge wait forever. Uses SIGALRM, so it holds on the main thread only, and
    only for sync code (``asyncio.run`` inside is fine): raised while a test's event loop waits,
    the error would escape the loop instead of reaching the test."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"the test ran longer than {seconds:g} s (a purge waiting forever?)")

    previous = signal.signal(signal.SIGALRM, expired)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an enclosing limit goes on with what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


def _pause(point: str) -> None:
    if os.environ.get("PURGE_APP_PAUSE") != point:
        return
    Path(os.environ["PURGE_APP_MARKER"]).write_text(point)
    release = os.environ.get("PURGE_APP_RELEASE")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if release and Path(release).exists():
            return
        time.sleep(0.01)
    raise RuntimeError("the test never released or killed this process")


def pause_at_boundaries(event: PurgeEvent) -> None:
    """A listener pausing before and after each step (``before:STEP``, ``after:STEP``).

    Listeners are plain functions, so a pause here does hold the event loop (and the lease
    renewals): keep these pauses short, or kill the process during them, as the tests do."""
    if event.kind == "start":
        _pause(f"before:{event.step}")
    elif event.kind == "done":
        _pause(f"after:{event.step}")


def _fail(name: str, subject: str) -> None:
    # Every handler call is logged (by name only), so tests can prove finished steps are not redone.
    directory = os.environ.get("PURGE_APP_DIR")
    if directory:
        with open(Path(directory) / "calls.log", "a") as log:
            log.write(name + "\n")
    if os.environ.get("PURGE_APP_FAIL") == name:
        raise RuntimeError(f"cannot reach the {name} service for {subject}")


def build_gate(directory: Path, *, keys: Keyring, store: str | None = None) -> AgeGate:
    """The test app's gate and its handlers, over the data in ``directory``."""
    gate = AgeGate(keys=keys, store=store or f"sqlite:///{directory / 'agegate.sqlite3'}")
    db = SQLiteDatabase(directory / "app.sqlite3")
    profiles = db.rows("profiles", "account_id")

    @gate.purger.handler("profiles", count=profiles.count, covers=profiles.covers)
    async def delete_profiles(subject: str) -> int:
        _fail("profiles", subject)
        await asyncio.to_thread(_pause, "entered:profiles")
        deleted = await profiles(subject)
        await asyncio.to_thread(_pause, "committed:profiles")
        return deleted

    def delete_orders_sync(subject: str) -> int:
        with contextlib.closing(sqlite3.connect(directory / "app.sqlite3", timeout=30)) as conn, conn:
            items = conn.execute(
                "DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE account_id = ?)",
                (subject,),
            ).rowcount
            # Killed here, the transaction never commits: nothing of it survives.
            _pause("mid:orders")
            orders = conn.execute("DELETE FROM orders WHERE account_id = ?", (subject,)).rowcount
            return items + orders

    def count_orders_sync(subject: str) -> int:
        with contextlib.closing(sqlite3.connect(directory / "app.sqlite3")) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM orders WHERE account_id = ?) + (SELECT count(*) FROM "
                "order_items WHERE order_id IN (SELECT id FROM orders WHERE account_id = ?))",
                (subject, subject),
            ).fetchone()
            return int(row[0])

    async def count_orders(subject: str) -> int:
        return await asyncio.to_thread(count_orders_sync, subject)

    @gate.purger.handler("orders", count=count_orders, covers=[db.table("orders"), db.table("order_items")])
    async def delete_orders(subject: str) -> int:
        _fail("orders", subject)
        await asyncio.to_thread(_pause, "entered:orders")
        # Blocking code runs in a thread, as in any handler: the event loop must stay free to
        # renew the job's lease (see agegate.purge).
        return await asyncio.to_thread(delete_orders_sync, subject)

    uploads = AccountFiles(directory / "files")
    avatars = AccountFiles(directory / "files", names=("avatars/{subject}.png",))

    async def count_files(subject: str) -> int:
        return await uploads.count(subject) + await avatars.count(subject)

    @gate.purger.handler("files", count=count_files)
    async def delete_files(subject: str) -> int:
        _fail("files", subject)
        await asyncio.to_thread(_pause, "entered:files")
        deleted = await uploads(subject)
        await asyncio.to_thread(_pause, "mid:files")
        return deleted + await avatars(subject)

    gate.purger.exempt(db.table("products"), "name")

    gate.purger.listen(pause_at_boundaries)
    return gate


def __getattr__(name: str) -> Any:
    if name == "gate":
        directory = Path(os.environ["PURGE_APP_DIR"])
        return build_gate(directory, keys=Keyring.from_env(), store=os.environ.get("PURGE_APP_STORE"))
    raise AttributeError(name)
