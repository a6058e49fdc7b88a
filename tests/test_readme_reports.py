"""docs/reports.md and the support runbook's "Reports from parents", run as written against
the page's ``myshop.main``."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import re
import shlex
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from agegate import AgeGateMiddleware, Keyring
from agegate.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: The developers' page (the app's ``myshop/main.py``) and the support runbook's section (the commands).
REPORTS = (DOCS / "reports.md").read_text(encoding="utf-8")
SUPPORT = (DOCS / "support-runbook.md").read_text(encoding="utf-8").split("\n## Reports from parents\n", 1)[1]
EXAMPLE_REF = "R-7KQ2-M9XD-4HFA"


@pytest.fixture
def myshop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (python,) = re.findall(r"```python\n(.*?)```", REPORTS, re.DOTALL)
    (tmp_path / "myshop").mkdir()
    (tmp_path / "myshop" / "__init__.py").write_text("")
    (tmp_path / "myshop" / "main.py").write_text(python)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    for name in ("myshop", "myshop.main"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_parent_reports_support_purges_the_parent_verifies(
    myshop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = importlib.import_module("myshop.main")

    app = AgeGateMiddleware(Starlette(), gate=shop.gate)

    async def report() -> str:
        # The child lied about their age at signup: the gate has the account (id acct-1).
        await shop.gate.signup({"birth_date": "1990-01-01"}, subject="acct-1")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://shop.test"
        ) as http:
            sent = await http.post(
                "/agegate/report",
                json={"account": "kid@example.org", "relation": "parent", "contact": "mum@example.net"},
            )
        await shop.gate.aclose()
        assert sent.status_code == 202
        return str(sent.json()["reference"])

    reference = asyncio.run(report())
    capsys.readouterr()
    assert main(["keys", "public"]) == 0
    public = capsys.readouterr().out.strip()
    (commands,) = re.findall(r"```sh\n(.*?)```", SUPPORT, re.DOTALL)
    for line in commands.strip().splitlines():
        command = line.split("  #")[0].replace(EXAMPLE_REF, reference).replace("<the public key>", public)
        args = shlex.split(command)
        assert args[0] == "agegate"
        monkeypatch.setattr(sys, "stdin", io.StringIO("acct-1\n"))
        assert main(args[1:]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        if args[1:3] == ["reports", "show"]:
            assert "kid@example.org" in out and "mum@example.net" in out
        if args[1] == "receipt":
            assert out.startswith("Valid receipt")
    assert (myshop / "outbox" / f"{reference}.txt").read_text().startswith("To: mum@example.net")
    assert main(["reports", "show", reference, "--app", "myshop.main:gate", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "delivered" and shown["report"] is None and shown["outcome"] == "purged"
    assert main(["reports", "list", "--app", "myshop.main:gate", "--overdue"]) == 0
