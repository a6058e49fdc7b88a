"""The "Drop it into your app" example, copied out of docs/integration.md and run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from agegate import Keyring

PAGE = Path(__file__).resolve().parent.parent / "docs" / "integration.md"


def example() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Drop it into your app", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]


@pytest.mark.anyio
async def test_drop_in_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {}
    exec(compile(example(), "docs/integration.md (Drop it into your app)", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]
    transport = httpx.ASGITransport(app=app)
    async with gate, httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        assert (await c.get("/checkout")).text == "order placed"
        assert (await c.post("/checkout")).status_code == 428
        assert (await c.post("/agegate", json={"birth_date": "1980-05-05"})).json() == {"outcome": "allowed"}
        assert (await c.post("/checkout")).text == "order placed"
        assert (await c.post("/agegate", json={"birth_date": "2020-05-05"})).json() == {
            "outcome": "under_age"
        }
        assert (await c.post("/checkout")).status_code == 403
