"""What a SQLite store's files hold of reports: nothing the reporter typed in plain form, and,
once a report is answered, not even its sealed copy (the WAL and free pages included)."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from agegate import AgeGate, AgeGateMiddleware, Delivery, Keyring
from agegate.reports import ReportLimit

pytestmark = pytest.mark.anyio


def store_bytes(directory: Path) -> bytes:
    """Every file of the store: the database, its WAL and shared memory, the revision file."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.name.startswith("agegate"))


async def test_a_hundred_reports_leave_nothing_readable_and_answered_ones_leave_nothing(
    tmp_path: Path,
) -> None:
    gate = AgeGate(keys=Keyring.generate("privacy"), store=f"sqlite:///{tmp_path}/agegate.sqlite3")
    gate.reports.limit = ReportLimit(burst=1000, per_hour=1000)
    sent: list[Delivery] = []
    gate.reports.on_closed(sent.append)
    app = AgeGateMiddleware(Starlette(), gate=gate, secure_cookies=False)
    tag = secrets.token_hex(4)
    typed: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        for n in range(100):
            fields = {
                "account": [
                    f"child{n}.{tag}@example.org",
                    f"kid_{n}_{tag}",
                    f"+1 555 01{n:02d} {tag[:2]}".replace(tag[:2], "77"),
                    f"https://shop.test/u/{tag}{n}",
                ][n % 4],
                "relation": ("parent", "guardian", "other")[n % 3],
                "contact": f"parent{n}.{tag}@example.net",
                "details": f"Free text {tag} number {n}: she is nine",
            }
            typed += [fields["account"], fields["contact"], fields["details"]]
            if n % 2:
                answer = await http.post("/agegate/report", json=fields)
            else:
                answer = await http.post("/agegate/report", data=fields, headers={"accept": "text/html"})
            assert answer.status_code in (202, 303)
    reports = await gate.reports.all()
    assert len(reports) == 100 and {r.fields.contact for r in reports if r.fields} == set(typed[1::3])
    written = store_bytes(tmp_path)
    for value in typed:
        for needle in {value, value.split("@")[0], value.casefold()}:
            assert needle.encode() not in written, needle
    sealed = [r.record.sealed for r in reports if r.record.sealed]
    assert len(sealed) == 100

    for report in reports:
        await gate.reports.close(report.reference, reason="no-account")
    assert len(sent) == 100 and {d.outcome for d in sent} == {"no-account"}
    assert {d.contact for d in sent} == set(typed[1::3])
    after = await gate.reports.all()
    assert {r.record.state for r in after} == {"delivered"} and all(r.fields is None for r in after)
    assert {r.record.outcome for r in after} == {"no-account"}  # the reason is kept
    # While the store is open (its WAL in use), and after it closed.
    for _ in range(2):
        written = store_bytes(tmp_path)
        for ciphertext in sealed:
            # Any 16 bytes of the AES-GCM body would betray a copy left behind.
            assert ciphertext[-32:-16] not in written
        await gate.aclose()
