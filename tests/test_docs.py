"""The README and the guides in docs/ hold together: every relative link leads to a file and
heading that exist, every guide is linked from the README and the index, every Python example is
run by a test, and the README's set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Every fenced ``python`` block in README.md and docs/, by page and the heading (``#`` or ``##``)
#: it is under, with how many blocks there are and the test module that copies them out and runs
#: them. A new example goes in here with its test, or in NOT_RUN with the reason it cannot run.
RUN_BY: dict[tuple[str, str], tuple[int, str]] = {
    ("README.md", "Quickstart"): (1, "test_readme_quickstart.py"),
    ("docs/screen.md", "The screen's rules"): (1, "test_docs_screen.py"),
    ("docs/integration.md", "Drop it into your app"): (1, "test_readme_middleware.py"),
    ("docs/integration.md", "Gating the whole service"): (1, "test_whole_service.py"),
    ("docs/integration.md", "Behind a proxy"): (1, "test_proxy.py"),
    ("docs/signup.md", "The signup hook"): (2, "test_readme_signup.py"),
    ("docs/regions-and-languages.md", "Other countries"): (2, "test_readme_regions.py"),
    ("docs/regions-and-languages.md", "Languages"): (1, "test_languages.py"),
    ("docs/signals-and-credentials.md", "Platform age signals"): (1, "test_readme_signals.py"),
    ("docs/signals-and-credentials.md", "Digital IDs"): (1, "test_readme_credentials.py"),
    ("docs/purge.md", "Purge handlers (for developers)"): (1, "test_readme_purge.py"),
    ("docs/reports.md", "Reports from parents (for developers)"): (1, "test_readme_reports.py"),
}
#: Python blocks no test runs, by page and heading, with the reason. Empty: every one runs.
NOT_RUN: dict[tuple[str, str], str] = {}

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def prose(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (code is not markdown)."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in prose(page):
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    """The page's link targets, inline code spans left out."""
    return [target for line in prose(page) for target in LINK.findall(re.sub(r"`[^`]*`", "", line))]


def python_blocks(page: Path) -> list[tuple[str, str]]:
    """(heading, block) for each fenced python block, under the nearest ``#`` or ``##`` heading."""
    found, heading, fence, block = [], "", "", []
    for line in page.read_text(encoding="utf-8").splitlines():
        if fence:  # inside a block: a "#" line is code, not a heading
            if line.startswith("```"):
                if fence == "```python":
                    found.append((heading, "\n".join(block)))
                fence, block = "", []
            else:
                block.append(line)
        elif line.startswith("```"):
            fence = line
        elif match := re.match(r"#{1,2} (.+)", line):
            heading = match.group(1)
    return found


def test_the_guides_exist_and_the_readme_and_the_index_link_every_one() -> None:
    guides = {page.name for page in PAGES if page.parent == ROOT / "docs"} - {"index.md"}
    assert {"integration.md", "signup.md", "storage.md", "purge.md", "support-runbook.md"} <= guides
    readme = {Path(t.split("#")[0]).name for t in links(ROOT / "README.md") if t.startswith("docs/")}
    index = {t.split("#")[0] for t in links(ROOT / "docs" / "index.md")}
    assert guides | {"index.md"} <= readme
    assert guides <= index


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or ROOT not in file.parents:
            broken.append(f"{target}: no such file")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {name(file)}")
    assert broken == []


def test_the_link_checker_reads_links_and_headings_as_github_does(tmp_path: Path) -> None:
    assert slug("The screen's rules") == "the-screens-rules"
    assert slug("The table (version 2026.1)") == "the-table-version-20261"
    assert slug("Purge handlers (for developers)") == "purge-handlers-for-developers"
    page = tmp_path / "p.md"
    page.write_text("# A\n\n## B\n\n## B\n\n```sh\n# not a heading\n```\n[x](y.md#b-1) `[no](z)`\n")
    assert anchors(page) == {"a", "b", "b-1"}
    assert links(page) == ["y.md#b-1"]


def test_every_python_example_is_run_by_a_test() -> None:
    found: Counter[tuple[str, str]] = Counter()
    for page in PAGES:
        for heading, _ in python_blocks(page):
            found[(name(page), heading)] += 1
    listed = {key: count for key, (count, _) in RUN_BY.items()}
    assert {key: n for key, n in found.items() if key not in NOT_RUN} == listed, (
        "list each example, and the test that runs it, in RUN_BY (or why it cannot run in NOT_RUN)"
    )
    assert set(NOT_RUN) <= set(found) and not set(NOT_RUN) & set(RUN_BY)
    for (page, heading), (_, module) in RUN_BY.items():
        source = (ROOT / "tests" / module).read_text(encoding="utf-8")
        assert Path(page).name in source, f"{module} does not read {page}"
        first_heading = (ROOT / page).read_text(encoding="utf-8").splitlines()[0] == f"# {heading}"
        assert first_heading or heading in source, f"{module} does not select {heading!r} in {page}"
        assert "exec(" in source or "write_text(python)" in source, f"{module} does not run them"


def test_the_readme_set_up_is_two_commands_and_ci_runs_the_test_one() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    set_up = text.split("\n## Set-up\n", 1)[1].split("\n## ", 1)[0]
    demo, tests = re.findall(r"```sh\n(.*?)\n```", set_up, re.DOTALL)
    assert demo.endswith("&& .venv/bin/agegate demo") and "'.[server]'" in demo
    assert (
        tests == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    install, run = tests.rsplit(" && ", 1)
    assert install.replace("pip install ", "pip install -q ") in ci and run in ci
