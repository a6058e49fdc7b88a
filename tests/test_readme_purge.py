"""The README's purge handlers example, copied out of README.md and run against real data."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agegate import Keyring

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Purge handlers (for developers)\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return block


async def test_the_purge_handlers_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    with contextlib.closing(sqlite3.connect("shop.sqlite3")) as conn, conn:
        conn.execute("CREATE TABLE profiles (account_id TEXT, email TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id TEXT)")
        conn.executemany("INSERT INTO orders (account_id) VALUES (?)", [("48213",), ("48213",), ("7",)])
        conn.execute("INSERT INTO profiles VALUES ('48213', 'kid@example.org')")
    (tmp_path / "uploads" / "48213").mkdir(parents=True)
    (tmp_path / "uploads" / "48213" / "a.png").write_bytes(b"png")
    contacts = {"48213": 1}

    class Mailer:
        async def delete_contact(self, subject: str) -> int:
            return contacts.pop(subject, 0)

    async def count_subscriptions(subject: str) -> int:
        return contacts.get(subject, 0)

    namespace: dict[str, Any] = {"mailer": Mailer(), "count_subscriptions": count_subscriptions}
    exec(compile(readme_example(), "README.md (purge handlers)", "exec"), namespace)
    gate = namespace["gate"]
    async with gate:
        assert gate.purger.names == ("profiles", "orders", "files", "mailing-list")
        report = await gate.purge("48213", ticket="SUP-1234", operator="Dana P")
        assert report.deleted == {"profiles": 1, "orders": 2, "files": 1, "mailing-list": 1}
        assert await gate.status_of("48213") == "under_age"
