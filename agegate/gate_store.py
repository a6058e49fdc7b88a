"""The gate's keyring and store: keyed hashes of account ids and identifiers, and every call on the
store, opened on first use and bounded by ``store_timeout`` (see :class:`~agegate.AgeGate`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar

from .accounts import AccountFormat, check_account_id
from .errors import ConfigurationError, StoreUnavailable
from .keycheck import KeyStatus, check_keys, key_status
from .keys import Keyring
from .stores import Store, open_store
from .tokens import Hasher, Sealer

__all__ = ["STORE_TIMEOUT", "GateStore", "normalise_identifier"]

T = TypeVar("T")

#: How many seconds a call waits for the store by default before :class:`StoreUnavailable`.
STORE_TIMEOUT = 2.0


def normalise_identifier(kind: str, value: str) -> str:
    """The canonical form of an identifier, so that trivially different spellings block alike:
    emails and usernames are case-folded and trimmed, phone numbers keep only their digits."""
    kind = kind.strip().lower()
    value = value.strip()
    if kind == "phone":
        return "".join(ch for ch in value if ch.isascii() and ch.isdigit())
    return value.casefold()


class GateStore:
    """The keyring and the store of an :class:`~agegate.AgeGate` (its base class): the keyed
    hashers, the one account-id rule, and the store, opened on first use."""

    def __init__(self, keys: Keyring, store: str | Store, store_timeout: float) -> None:
        self.keys = keys
        self.store_timeout = float(store_timeout)
        self.sealer = Sealer(keys, "cookie")
        self.subject_hasher = Hasher(keys, "subject")
        self.attestation_hasher = Hasher(keys, "attestation")
        self.identifier_hasher = Hasher(keys, "identifier")
        self._store: Store = (
            open_store(store, timeout=self.store_timeout) if isinstance(store, str) else store
        )
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._abandoned: set[asyncio.Task[Any]] = set()  # store calls that ran out of time
        #: The app's own shape for account ids (``gate.purger.subject_format`` sets it).
        self.account_format: AccountFormat | None = None

    # -- the store ---------------------------------------------------------------------------

    async def store(self) -> Store:
        """The store, opened (schema created or migrated) on first use.

        Raises :class:`~agegate.KeyringMismatch` when the keyring does not fit the store: it
        cannot read the store's records, or drops a key some still need (see
        :mod:`agegate.keycheck`); the store is then not used."""
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._store.open()
                    try:
                        await check_keys(self.keys, self._store)
                    except BaseException:
                        await self._store.close()
                        raise
                    self._opened = True
        return self._store

    async def key_status(self) -> list[KeyStatus]:
        """Each key id the keyring lists or the store knows, with the records that need it
        (``agegate keys status``). Works, for diagnosis, even when the keyring does not fit
        the store (and then leaves the store closed again)."""
        if self._opened:
            return await key_status(self.keys, self._store)
        await self._store.open()
        try:
            return await key_status(self.keys, self._store)
        finally:
            if not self._opened:
                await self._store.close()

    async def _ask(self, op: Callable[[Store], Awaitable[T]]) -> T:
        """``op`` on the opened store, answered within ``store_timeout`` seconds or refused
        with :class:`~agegate.StoreUnavailable`.

        The call runs as a task of its own that is cancelled, not awaited, when time is up: a
        store stuck on a dead connection may take longer to clean up, and the request must not
        wait for that. Each store call is one transaction, so a cancelled one writes nothing or
        all of its change.
        """
        task = asyncio.ensure_future(self._on_store(op))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.store_timeout)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise StoreUnavailable(
                f"the age gate's store did not answer within {self.store_timeout:g} seconds"
            )
        try:
            return task.result()
        except OSError as exc:  # a custom store's socket or file error: the store cannot answer
            raise StoreUnavailable(f"the age gate's store failed: {type(exc).__name__}") from None

    async def _on_store(self, op: Callable[[Store], Awaitable[T]]) -> T:
        return await op(await self.store())

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget_abandoned)

    def _forget_abandoned(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody is waiting for it any more

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self._opened:
            await self._store.close()
            self._opened = False

    async def __aenter__(self) -> Self:
        await self.store()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- hashing -----------------------------------------------------------------------------

    def account_id(self, subject: object) -> str:
        """``subject`` if every entry point accepts it as an account id (one rule for signup,
        status, the middleware's ``subject=`` and the purge), else
        :class:`~agegate.InvalidAccountId`."""
        return check_account_id(subject, self.account_format)

    def subject_hashes(self, subject: str) -> list[bytes]:
        """HMAC(subject key, account id) under every listed key, active first."""
        return self.subject_hasher.digests(self.account_id(subject))

    def identifier_hashes(self, identifiers: Mapping[str, str] | None) -> list[bytes]:
        """HMAC(identifier key, kind | normalised value) under every listed key."""
        out: list[bytes] = []
        for kind, value in (identifiers or {}).items():
            if not isinstance(kind, str) or not isinstance(value, str):
                raise ConfigurationError("identifiers map kinds (email, phone, username) to strings")
            normal = normalise_identifier(kind, value)
            if normal:
                out.extend(self.identifier_hasher.digests(kind.strip().lower(), normal))
        return out
