"""An app that only gates requests and screens signups loads neither the purge code, the report
and age-signal code nor dateutil's parser; they load when first needed."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

LAZY = (
    "agegate.purge",
    "agegate.coverage",
    "agegate.receipts",
    "agegate.handlers",
    "agegate.reports",
    "agegate.knowledge",
    "agegate.signals",
    "agegate.asgi.signals",
    "dateutil.parser",
)

APP = """
import asyncio, sys
from starlette.applications import Starlette
from starlette.middleware import Middleware
from agegate import AgeGate, AgeGateMiddleware, Keyring, signup_form
import agegate

gate = AgeGate(keys=Keyring.generate("k"), store="memory://")
app = Starlette(middleware=[Middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"])])
adult = {"birth_date": "March 4, 1990"}
asyncio.run(gate.signup(adult, subject="acct-1", identifiers={"email": "a@example.com"}))
print(" ".join(sorted(m for m in sys.modules if m.startswith(LAZY))))
gate.purger
print(agegate.PurgeReport.__name__, " ".join(sorted(m for m in sys.modules if m.startswith(LAZY))))
gate.reports, gate.knowledge, agegate.AgeSignal
print(" ".join(sorted(m for m in sys.modules if m.startswith(LAZY))))
"""


def test_the_gate_and_the_signup_hook_load_no_purge_code_and_no_date_parser() -> None:
    code = f"LAZY = {LAZY!r}\n{APP}"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    before, after, last = out.stdout.splitlines()
    assert before == ""
    assert after.startswith("PurgeReport ") and "agegate.purge" in after.split()
    assert {"agegate.reports", "agegate.knowledge", "agegate.signals"} <= set(last.split())


def test_the_default_identifier_kinds_are_the_purges() -> None:
    from agegate import purge
    from agegate.gate import _KINDS

    assert frozenset(purge.IDENTIFIER_KINDS) == _KINDS


@given(st.text(max_size=12) | st.sampled_from(["jan", "SEPT", "May", "sunday", "Thu", "İ", "mai"]))
def test_month_and_weekday_names_read_as_dateutil_reads_them(word: str) -> None:
    from dateutil.parser import parserinfo

    from agegate.birthdate import _MONTHS, _WEEKDAYS

    info = parserinfo()
    assert _MONTHS.month(word) == info.month(word)
    assert _WEEKDAYS.weekday(word) == info.weekday(word)


def test_the_purger_reports_and_knowledge_are_made_once_whatever_the_threads() -> None:
    import threading

    from agegate import AgeGate, Keyring

    for _ in range(50):
        gate = AgeGate(keys=Keyring.generate("k"), store="memory://")
        start = threading.Barrier(8)
        seen: list[object] = []

        def ask(gate: AgeGate = gate, start: threading.Barrier = start, seen: list[object] = seen) -> None:
            start.wait()
            seen.extend((gate.reports, gate.knowledge, gate.purger))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(x) for x in seen}) == 3  # one Reports, one ActualKnowledge, one Purger
    gate.reports = seen[0]  # type: ignore[assignment]  # still settable, as an attribute was


def test_names_loaded_on_first_use_are_listed() -> None:
    import agegate

    assert {"AgeSignal", "lower_wins", "PurgeReport", "Delivery", "SQLiteDatabase"} <= set(dir(agegate))
