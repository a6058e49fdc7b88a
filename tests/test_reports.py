"""gate.reports: receiving, deciding and answering reports; the fields' rules; the rate limit;
and the keys a report needs."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import (
    AgeGate,
    ConfigurationError,
    Delivery,
    InvalidInput,
    InvalidReport,
    Keyring,
    KeyringMismatch,
    ReportError,
)
from agegate.cli import main
from agegate.reports import ReportLimit
from agegate.reports.fields import account_kind, read_fields

GOOD = {"account": "kid@example.org", "relation": "guardian", "contact": "gran@example.net"}


@pytest.mark.parametrize(
    ("account", "kind"),
    [
        ("kid@example.org", "email"),
        ("https://shop.test/u/kid", "url"),
        ("HTTP://shop.test/kid", "url"),
        ("+1 (555) 010-0199", "phone"),
        ("5550100199", "phone"),
        ("skater_77", "username"),
        ("555", "username"),  # too few digits for a phone number
    ],
)
def test_the_kind_of_account_is_read_from_its_shape(account: str, kind: str) -> None:
    assert account_kind(account) == kind


_VALUES = st.one_of(st.text(max_size=300), st.integers(), st.none(), st.booleans())


@given(
    st.dictionaries(
        st.sampled_from(["account", "relation", "contact", "details", "other"]), _VALUES, max_size=5
    )
)
def test_read_fields_takes_a_report_or_names_a_field(data: dict[str, Any]) -> None:
    try:
        fields = read_fields(data)
    except InvalidReport as exc:
        assert exc.field in ("account", "relation", "contact", "details")
        # The message never repeats what was typed.
        assert all(not isinstance(v, str) or len(v) < 4 or v not in str(exc) for v in data.values())
    else:
        assert fields.relation in ("parent", "guardian", "other") and "@" in fields.contact
        assert fields.account == str(data["account"]).strip()


@given(
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=600),
    st.lists(st.integers(0, 3), max_size=60),
)
def test_the_rate_limit_never_lets_more_through_than_it_says(
    burst: int, per_hour: int, accounts: list[int]
) -> None:
    clock = [0.0]
    limit = ReportLimit(burst=burst, per_hour=per_hour, per_account=2, clock=lambda: clock[0])
    allowed = [n for n in accounts if limit.take(bytes([n])) is None]
    assert len(allowed) <= burst
    assert all(allowed.count(n) <= 2 for n in set(allowed))


def test_the_rate_limit_refuses_bad_settings() -> None:
    with pytest.raises(ConfigurationError):
        ReportLimit(burst=0)
    with pytest.raises(ConfigurationError):
        ReportLimit(per_hour=True)


@pytest.mark.anyio
async def test_close_answers_and_erases_and_a_failing_answer_is_retried(gate: AgeGate) -> None:
    sent: list[Delivery] = []
    failing = [True]

    @gate.reports.on_closed
    async def answer(delivery: Delivery) -> None:
        if failing[0]:
            raise OSError("smtp down for gran@example.net")
        sent.append(delivery)

    record = await gate.reports.submit(GOOD)
    with pytest.raises(InvalidInput):
        await gate.reports.close(record.reference, reason="I spoke to the mother, Jane Doe")
    closed = await gate.reports.close(record.reference.lower(), reason="not-a-child")
    assert closed.record.state == "closed" and closed.fields is not None
    assert closed.record.error == "the on_closed callback failed with OSError"  # no message, no contact
    with pytest.raises(ReportError, match="closed, not open"):
        await gate.reports.close(record.reference, reason="duplicate")
    with pytest.raises(ReportError, match="reports deliver"):
        await gate.reports.begin_purge(record.reference)
    failing[0] = False
    (done,) = await gate.reports.deliver()
    assert done.record.state == "delivered" and done.fields is None and done.record.attempts == 2
    assert sent == [Delivery(record.reference, "gran@example.net", "not-a-child", None)]
    assert await gate.reports.deliver() == []
    stored = await (await gate.store()).get_report(record.reference)
    assert stored is not None and stored.sealed is None and stored.outcome == "not-a-child"


@pytest.mark.anyio
async def test_without_a_callback_nothing_is_erased(gate: AgeGate) -> None:
    record = await gate.reports.submit(GOOD)
    closed = await gate.reports.close(record.reference, reason="withdrawn")
    assert closed.record.state == "closed" and closed.record.error == "no on_closed callback is registered"
    assert (await gate.reports.get(record.reference)).fields is not None


@pytest.mark.anyio
async def test_unknown_and_malformed_references(gate: AgeGate) -> None:
    with pytest.raises(ReportError, match="looks like"):
        await gate.reports.get("SUP-1234")
    with pytest.raises(ReportError, match="there is no report R-0000-0000-0000"):
        await gate.reports.get("R-0000-0000-0000")


@pytest.mark.anyio
async def test_a_sealed_part_copied_to_another_report_does_not_open(gate: AgeGate) -> None:
    one = await gate.reports.submit(GOOD)
    two = await gate.reports.submit({**GOOD, "account": "other@example.org"})
    store = await gate.store()
    import dataclasses

    await store.update_report(dataclasses.replace(two, sealed=one.sealed), expected="open")
    with pytest.raises(ReportError, match="cannot be opened"):
        await gate.reports.get(two.reference)


@pytest.mark.anyio
async def test_an_unanswered_report_needs_its_key(tmp_path: Path) -> None:
    old, new = Keyring.generate("old"), Keyring.generate("new")
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=old, store=url) as app:
        record = await app.reports.submit(GOOD)
    rotated = Keyring.from_string(f"{new.to_string()},{old.to_string()}")
    async with AgeGate(keys=rotated, store=url) as app:
        statuses = {s.kid: s for s in await app.key_status()}
        assert statuses["old"].reports == 1 and statuses["old"].needed_until == "indefinitely"
        assert statuses["old"].to_json()["reports"] == 1
    with pytest.raises(KeyringMismatch, match="'old': 1"):
        async with AgeGate(keys=new, store=url):
            pass
    # Answered, it needs no key: the old one can go.
    async with AgeGate(keys=rotated, store=url) as app:
        app.reports.on_closed(lambda delivery: None)
        await app.reports.close(record.reference, reason="no-account")
    async with AgeGate(keys=new, store=url) as app:
        assert (await app.reports.get(record.reference)).record.state == "delivered"


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "reportshop.py").write_text(
        "from agegate import AgeGate, Keyring\n"
        "gate = AgeGate(keys=Keyring.from_env(), store='sqlite:///agegate.sqlite3')\n"
        "gate.reports.on_closed(lambda delivery: None)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("cli").to_string())
    monkeypatch.setenv("AGEGATE_APP", "reportshop:gate")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.delitem(sys.modules, "reportshop", raising=False)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_reports_list_flags_overdue_and_exits_1_with_overdue(
    shop: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import importlib

    gate = importlib.import_module("reportshop").gate

    async def submit() -> tuple[str, str]:
        old = await gate.reports.submit(GOOD, now=datetime.now(UTC) - timedelta(days=8))
        new = await gate.reports.submit({**GOOD, "details": "second"})
        await gate.aclose()
        return old.reference, new.reference

    old, new = asyncio.run(submit())
    code, out, _ = cli(capsys, "reports", "list")
    assert code == 0 and len(re.findall(r"(?<![0-9A-Z])R-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", out)) == 2
    assert next(line for line in out.splitlines() if old in line).endswith("OVERDUE")
    assert "gran@" not in out and "kid@" not in out  # list prints no personal data
    code, out, _ = cli(capsys, "reports", "list", "--overdue", "--json")
    assert code == 1 and [r["reference"] for r in json.loads(out)] == [old]
    code, out, _ = cli(capsys, "reports", "show", new)
    assert code == 0 and "gran@example.net" in out and "second" in out and "agegate purge --report" in out
    code, out, _ = cli(capsys, "reports", "close", old, "--reason", "duplicate")
    assert code == 0 and "the answer was delivered" in out
    code, out, _ = cli(capsys, "reports", "list", "--overdue")
    assert code == 0 and "No such reports." in out
    code, out, _ = cli(capsys, "reports", "list", "--open", "--json")
    assert [r["reference"] for r in json.loads(out)] == [new]
    code, _, err = cli(capsys, "reports", "show", "R-0000-0000-0000")
    assert code == 1 and "there is no report" in err
    code, out, _ = cli(capsys, "reports", "close", new, "--reason", "duplicate", "--json")
    assert code == 0 and json.loads(out)["state"] == "delivered"
    # purge --report refuses a --ticket of its own, and a report already answered.
    code, _, err = cli(
        capsys, "purge", "--report", new, "--ticket", "T-1", "--subject", "a", "--operator", "o"
    )
    assert code == 2 and "drop --ticket" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli(
        capsys, "purge", "--report", new, "--subject", "a", "--operator", "o", "--yes", "--allow-no-match"
    )
    assert code == 1 and "delivered" in err
