"""The "Other countries" section of docs/regions-and-languages.md: its examples run as written,
and its table is the built-in one."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from agegate import AgeGate, AgePolicy, Keyring, PolicyTable

PAGE = Path(__file__).resolve().parent.parent / "docs" / "regions-and-languages.md"


def section() -> str:
    return PAGE.read_text(encoding="utf-8").split("## Other countries", 1)[1].split("\n## ", 1)[0]


@pytest.mark.anyio
async def test_the_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    blocks = re.findall(r"```python\n(.*?)```", section(), re.DOTALL)
    assert len(blocks) == 2
    first: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/regions-and-languages.md (Other countries)", "exec"), first)
    assert first["decision"].policy == "gdpr-de-16"
    transport = httpx.ASGITransport(app=first["app"])
    async with first["gate"], httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        fifteen = {"birth_date": f"{date.today().year - 15}-01-01"}
        german = await c.post("/agegate", json=fifteen, headers={"cf-ipcountry": "DE"})
        assert german.json() == {"outcome": "under_age"}
        american = await c.post("/agegate", json=fifteen, headers={"cf-ipcountry": "US"})
        assert american.json() == {"outcome": "under_age"}  # sticky
    second: dict[str, Any] = {}
    exec(compile(blocks[1], "docs/regions-and-languages.md (Other countries, override)", "exec"), second)
    gate: AgeGate = second["gate"]
    assert gate.policy_for("us-ca") == AgePolicy(13, "coppa-ca-13", "2026.1-shop.1")
    assert gate.policy_for("nz").min_age == 16
    # The comments say what the lines return.
    commented = re.findall(r"^(AgePolicy\.for_region.*?\.min_age)  # (\d+)", blocks[0], re.MULTILINE)
    assert len(commented) == 2
    for expression, value in commented:
        assert eval(expression, first) == int(value)
    assert repr(AgePolicy.for_region("de")) in blocks[0]


def test_the_table_is_the_built_in_one() -> None:
    table = PolicyTable.builtin()
    text = section()
    assert f"### The table (version {table.version})" in text
    rows = re.findall(r"^\| `([A-Z-]+)` \| [^|]+ \| (\d+) \| `([a-z0-9-]+)` \|", text, re.MULTILINE)
    assert {code: (int(age), name) for code, age, name in rows} == {
        code: (rule.min_age, rule.name) for code, rule in table.rules.items()
    }
    assert len(rows) == len(table.rules)
