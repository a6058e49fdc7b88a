"""The README's quickstart, copied out of README.md and run as written: a child is refused at
the checkout and at the signup, an adult passes, and the signup stores nothing of a refusal."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from agegate import Keyring

README = Path(__file__).resolve().parent.parent / "README.md"
HTML = {"accept": "text/html"}


def quickstart() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return block


def test_the_quickstart_is_short() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    assert len(quickstart().splitlines()) <= 40
    assert len(section.strip().splitlines()) <= 50


@pytest.mark.anyio
async def test_the_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///agegate.sqlite3 lands here
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {"__name__": "app"}
    exec(compile(quickstart(), "README.md (Quickstart)", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]

    def browser() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example")

    async with gate:
        async with browser() as adult:
            assert (await adult.get("/checkout")).text == "order placed"  # reading stays open
            required = await adult.post("/checkout", headers=HTML)
            assert required.status_code == 428 and 'href="/agegate?next=/checkout"' in required.text
            assert (await adult.get("/agegate", headers=HTML)).status_code == 200
            screened = await adult.post("/agegate", json={"birth_date": "1980-05-05"})
            assert screened.json() == {"outcome": "allowed"}
            assert (await adult.post("/checkout")).text == "order placed"

        async with browser() as child:
            screened = await child.post("/agegate", json={"birth_date": "2020-05-05"})
            assert screened.json() == {"outcome": "under_age"}
            assert (await child.post("/checkout")).status_code == 403

        async with browser() as newcomer:
            bad = await newcomer.post("/signup", data={"birth_date": "1990-02-30"})
            assert bad.status_code == 400
            assert bad.json() == {"error": "invalid_birth_date", "code": "impossible"}
            made = await newcomer.post("/signup", data={"birth_date": "1990-04-23", "name": "Ada"})
            assert made.status_code == 201
            assert await gate.status_of(made.json()["account"]) == "allowed"
            assert (await newcomer.post("/checkout")).text == "order placed"  # the signup screened it

        async with browser() as kid:
            refused = await kid.post("/signup", data={"birth_date": "2019-01-01", "name": "Kid"})
            assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
            assert (await kid.post("/checkout")).status_code == 403  # the sticky cookie

        form = {"content-type": "application/x-www-form-urlencoded"}
        async with browser() as odd:  # bodies that are not a form: a clear 4xx, never a 500
            for body, headers, status, code in (
                (b"[1, 2]", {"content-type": "application/json"}, 400, "malformed"),
                (b"{bad", {"content-type": "application/json"}, 400, "malformed"),
                (b"birth_year=%FF%FE", form, 400, "malformed"),
                (b"x", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
                (b"a=" + b"1" * 100_000, form, 413, "too_large"),
            ):
                answer = await odd.post("/signup", content=body, headers=headers)
                assert (answer.status_code, answer.json()) == (status, {"error": code})

        # The store cannot answer (another process holds SQLite's write lock): a 503 to retry,
        # and no account.
        with contextlib.closing(sqlite3.connect(tmp_path / "agegate.sqlite3", isolation_level=None)) as lock:
            lock.execute("BEGIN EXCLUSIVE")
            async with browser() as waiting:
                busy = await waiting.post("/signup", data={"birth_date": "1990-04-23", "name": "Bo"})
            lock.execute("ROLLBACK")
        assert busy.status_code == 503 and busy.json() == {"error": "store_unavailable"}
        assert int(busy.headers["retry-after"]) > 0
    assert (tmp_path / "agegate.sqlite3").is_file()
