"""``sqlite:///path``: the embedded default store (issue 3)."""

from __future__ import annotations

from ..errors import StoreError
from .memory import MemoryStore


class SQLiteStore(MemoryStore):
    """Placeholder until the SQLite store lands."""

    def __init__(self, url: str) -> None:
        raise StoreError("the SQLite store is not available yet")
