"""The "Platform age signals" example, copied out of docs/signals-and-credentials.md and run as
written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from agegate import Keyring

PAGE = Path(__file__).resolve().parent.parent / "docs" / "signals-and-credentials.md"


def example() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Platform age signals", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]


@pytest.mark.anyio
async def test_platform_signals_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {}
    exec(compile(example(), "docs/signals-and-credentials.md (Platform age signals)", "exec"), namespace)
    app, gate, after_login = namespace["app"], namespace["gate"], namespace["after_login"]
    transport = httpx.ASGITransport(app=app)

    def sent(**signal: Any) -> dict[str, str]:
        return {"x-age-signal": json.dumps(signal)}

    async with gate, httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        adult = await c.post("/orders", headers=sent(platform="android", userStatus="VERIFIED"))
        assert adult.text == "order placed"
        teen = sent(platform="ios", lowerBound=13, upperBound=15, ageRangeDeclaration="selfDeclared")
        assert (await c.post("/orders", headers=teen)).text == "order placed"
        child = sent(bracket="under-13")
        assert (await c.post("/orders", headers=child)).status_code == 403
        unsure = sent(platform="android", userStatus="SUPERVISED", ageLower=10, ageUpper=15)
        assert (await c.post("/orders", headers=unsure)).status_code == 428
        for bad in ({"x-age-signal": "{"}, {"x-age-signal": "[]"}, sent(bracket="adult")):
            response = await c.post("/orders", headers=bad)
            assert response.status_code == 400 and response.json() == {"error": "invalid_age_signal"}
        assert await after_login("acct-1", {"userStatus": "VERIFIED"}) is True
        assert await after_login("acct-2", {"userStatus": "UNKNOWN"}) is False
        assert (
            await after_login("acct-1", {"userStatus": "SUPERVISED", "ageLower": 0, "ageUpper": 12}) is False
        )
        assert await gate.status_of("acct-1") == "under_age"
        assert await after_login("acct-1", {"userStatus": "VERIFIED"}) is False  # the lower age stands
        assert [f.subject for f in await gate.knowledge.flags()] == ["acct-1"]
