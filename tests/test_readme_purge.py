"""The purge handlers example, copied out of docs/purge.md and run against real data."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import relational_schema as rs

from agegate import Keyring

pytestmark = pytest.mark.anyio

PAGE = Path(__file__).resolve().parent.parent / "docs" / "purge.md"


def readme_example() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("# Purge handlers (for developers)\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return block


async def test_the_purge_handlers_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    with contextlib.closing(sqlite3.connect("shop.sqlite3")) as conn, conn:
        conn.executescript(rs.SQLITE_DDL)
        rs.seed(conn)
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER, kind TEXT)")
        conn.executemany(
            "INSERT INTO events (account_id, kind) VALUES (?, 'login')", [(351,), (351,), (352,)]
        )
    with contextlib.closing(sqlite3.connect("newsletter.sqlite3")) as conn, conn:
        conn.execute("CREATE TABLE subscribers (account_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO subscribers VALUES (?)", [("351",), ("352",)])
    (tmp_path / "uploads" / "351").mkdir(parents=True)
    (tmp_path / "uploads" / "351" / "a.png").write_bytes(b"png")
    with contextlib.closing(sqlite3.connect("shop.sqlite3")) as conn:
        before = rs.snapshot(conn)

    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), "docs/purge.md (purge handlers)", "exec"), namespace)
    gate = namespace["gate"]
    async with gate:
        assert gate.purger.names == ("customer", "events", "files", "mailing-list")
        dry = await gate.purge("351", ticket="SUP-1234", operator="Dana P", dry_run=True)
        assert [(s.table, s.action) for s in dry.plan][-2:] == [
            ("customer", "delete"),
            ("address", "delete if unreferenced"),
        ]
        report = await gate.purge("351", ticket="SUP-1234", operator="Dana P")
        assert report.deleted == {"customer": 9, "events": 2, "files": 1, "mailing-list": 1}
        assert await gate.status_of("351") == "under_age"
    with contextlib.closing(sqlite3.connect("shop.sqlite3")) as conn:
        assert rs.snapshot(conn) == rs.expected_after(before, 351)
