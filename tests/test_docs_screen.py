"""docs/screen.md, "The screen's rules": its example runs as written and says what the screen
answers, and its shell lines give the exit statuses they promise."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from agegate import Decision, Keyring
from agegate.cli import main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "screen.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("docs").to_string())
    (block,) = blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/screen.md (The screen's rules)", "exec"), namespace)
    decision = namespace["gate"].screen({"birth_date": "June 1, 2013"})
    assert isinstance(decision, Decision) and decision.policy == "min-age-13"
    assert "# Decision(allowed=..., outcome=..., policy=...)" in block


def test_the_shell_lines_exit_as_they_say(capsys: pytest.CaptureFixture[str]) -> None:
    (shell,) = blocks("sh")
    for line in shell.strip().splitlines():
        command, comment = line.split("#", 1)
        args = shlex.split(command)
        assert args[0] == "agegate"
        expected = int(re.findall(r"exit (\d)", comment)[0])
        assert main(args[1:]) == expected, line
        out = capsys.readouterr().out
        if "prints" in comment:
            assert out.strip() == comment.split("prints", 1)[1].split(";")[0].strip()
