"""End to end, on SQLite and PostgreSQL: a parent reports through the form, support purges
from the report (``agegate purge --report``), the app's callback answers with the signed
receipt, ``agegate receipt verify`` accepts it, and the report is closed with its contact
erased. Killed mid-way (in the purge, or in the answer) and resumed, the end state is the same.

Real processes over the purge test app (``purge_app.py``), as in ``test_purge_crash.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import purge_app
import pytest
from test_purge_crash import KEYS, _env, agegate, start, wait_for_file

from agegate import AgeGateMiddleware, Keyring

pytestmark = pytest.mark.slow

POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL", "")
APP = ["--app", "purge_app:gate"]
CONTACT = "parent.1001@example.net"
DETAILS = "My son made this account at 11; please delete it."


NEEDS_POSTGRES = pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=NEEDS_POSTGRES)])
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Extra environment for the app: its store (SQLite by default, or a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield {}
        return
    import psycopg

    schema = "reports_" + secrets.token_hex(6)
    yield {"PURGE_APP_STORE": f"{POSTGRES_URL}?schema={schema}"}
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def env(directory: Path, store: dict[str, str], **extra: str) -> dict[str, str]:
    return _env(directory, **store, **extra)


def report_through_the_form(directory: Path, store: dict[str, str]) -> str:
    """What the parent does: the JSON API of the report form, in process, over the app's gate."""
    gate = purge_app.build_gate(directory, keys=Keyring.from_string(KEYS), store=store.get("PURGE_APP_STORE"))
    app = AgeGateMiddleware(lambda scope, receive, send: None, gate=gate, secure_cookies=False)  # type: ignore[arg-type, return-value]

    async def post() -> str:
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
                answer = await client.post(
                    "/agegate/report",
                    json={
                        "account": purge_app.CHILD_EMAIL,
                        "relation": "parent",
                        "contact": CONTACT,
                        "details": DETAILS,
                    },
                )
            assert answer.status_code == 202
            return str(answer.json()["reference"])
        finally:
            await gate.aclose()

    return asyncio.run(post())


def show(directory: Path, store: dict[str, str], reference: str) -> dict[str, Any]:
    done = agegate(["reports", "show", reference, *APP, "--json"], env(directory, store))
    assert done.returncode == 0, done.stderr
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def purge_from(reference: str) -> list[str]:
    return [
        "purge",
        *APP,
        "--report",
        reference,
        "--subject",
        purge_app.CHILD,
        "--operator",
        "support-7",
        "--yes",
        "--json",
    ]


def deliveries(directory: Path) -> list[dict[str, Any]]:
    path = directory / "deliveries.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def end_state(directory: Path, store: dict[str, str], reference: str) -> dict[str, Any]:
    """What must be the same however the flow got there."""
    shown = show(directory, store, reference)
    (delivery,) = deliveries(directory)
    receipt = directory / "receipt.json"
    receipt.write_text(delivery["receipt"])
    public = agegate(["keys", "public"], env(directory, store)).stdout.strip()
    verified = agegate(
        ["receipt", "verify", str(receipt), "--public-key", public, "--json"], env(directory, store)
    )
    assert verified.returncode == 0, verified.stdout
    payload = json.loads(verified.stdout)["receipt"]
    assert payload["ticket"] == reference and payload["job_id"] == shown["job_id"]
    return {
        "state": shown["state"],
        "outcome": shown["outcome"],
        "report": shown["report"],  # erased once answered
        "delivery": {k: delivery[k] for k in ("reference", "contact", "outcome")},
        "deleted": {h["name"]: h["deleted"] for h in payload["handlers"]},
        "identifiers_blocked": payload["identifiers_blocked"],
        "others": purge_app_others(directory),
    }


def purge_app_others(directory: Path) -> Any:
    from test_purge_crash import others

    return others(directory)


EXPECTED = {
    "state": "delivered",
    "outcome": "purged",
    "report": None,
    "deleted": {"profiles": 1, "orders": 6, "files": 3},
    "identifiers_blocked": 1,
}


def test_report_purge_answer_verify(tmp_path: Path, store_env: dict[str, str]) -> None:
    purge_app.seed(tmp_path)
    reference = report_through_the_form(tmp_path, store_env)
    listed = agegate(["reports", "list", *APP, "--open", "--json"], env(tmp_path, store_env))
    assert [r["reference"] for r in json.loads(listed.stdout)] == [reference]
    shown = show(tmp_path, store_env, reference)
    assert shown["report"] == {
        "account": purge_app.CHILD_EMAIL, "account_kind": "email", "relation": "parent",
        "contact": CONTACT, "details": DETAILS,
    }  # fmt: skip
    done = agegate(purge_from(reference), env(tmp_path, store_env))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ticket"] == reference
    state = end_state(tmp_path, store_env, reference)
    assert {k: state[k] for k in EXPECTED} == EXPECTED
    assert state["delivery"] == {"reference": reference, "contact": CONTACT, "outcome": "purged"}
    # The report's email is blocked from signing up again; the job is linked to the report.
    audit = json.loads(agegate(["audit", *APP, "--json"], env(tmp_path, store_env)).stdout)
    assert [(j["ticket"], j["state"]) for j in audit] == [(reference, "done")]
    # Nothing more to do; purging from the report again is refused (already answered).
    again = agegate(["reports", "deliver", *APP], env(tmp_path, store_env))
    assert again.returncode == 0 and "Nothing to deliver" in again.stdout
    refused = agegate(purge_from(reference), env(tmp_path, store_env))
    assert refused.returncode == 1 and "delivered" in refused.stderr
    assert len(deliveries(tmp_path)) == 1


@pytest.mark.parametrize(
    ("store_env", "point", "how"),
    [
        ("sqlite", "mid:orders", "resume"),
        ("sqlite", "after:block_identifiers", "again"),
        ("sqlite", "deliver", "again"),
        # The store's part is the same at every point: one kill point on PostgreSQL.
        pytest.param("postgres", "mid:orders", "resume", marks=NEEDS_POSTGRES),
    ],
    indirect=["store_env"],
)
def test_killed_mid_way_and_resumed_gives_the_same_end_state(
    tmp_path: Path, store_env: dict[str, str], point: str, how: str
) -> None:
    purge_app.seed(tmp_path)
    reference = report_through_the_form(tmp_path, store_env)
    marker = tmp_path / "paused"
    proc = start(
        purge_from(reference), env(tmp_path, store_env, PURGE_APP_PAUSE=point, PURGE_APP_MARKER=str(marker))
    )
    wait_for_file(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    shown = show(tmp_path, store_env, reference)
    assert shown["state"] == ("closed" if point == "deliver" else "purging")
    assert shown["report"]["contact"] == CONTACT  # not answered yet: the contact is kept
    if how == "resume":
        # The support runbook: finish interrupted purges, then deliver what is due.
        resumed = agegate(["purge", *APP, "--resume"], env(tmp_path, store_env))
        assert resumed.returncode == 0, resumed.stderr
        delivered = agegate(["reports", "deliver", *APP], env(tmp_path, store_env))
    else:
        delivered = agegate(purge_from(reference), env(tmp_path, store_env))
        if point == "deliver":  # decided already: only the answer is left
            assert delivered.returncode == 1 and "run `agegate reports deliver`" in delivered.stderr
            delivered = agegate(["reports", "deliver", *APP], env(tmp_path, store_env))
    assert delivered.returncode == 0, delivered.stderr + delivered.stdout
    state = end_state(tmp_path, store_env, reference)
    assert {k: state[k] for k in EXPECTED} == EXPECTED
    assert state["delivery"] == {"reference": reference, "contact": CONTACT, "outcome": "purged"}


def test_a_failed_answer_is_retried_and_the_contact_kept_until_then(tmp_path: Path) -> None:
    store_env: dict[str, str] = {}  # the same logic on every store: SQLite is enough
    purge_app.seed(tmp_path)
    reference = report_through_the_form(tmp_path, store_env)
    (tmp_path / "mail_down").touch()
    done = agegate(purge_from(reference), env(tmp_path, store_env))
    answer = json.loads(done.stdout)["report"]
    assert (
        done.returncode == 1 and answer["state"] == "closed" and "ConnectionError" in answer["delivery_error"]
    )
    assert CONTACT not in done.stdout + done.stderr  # the callback's message is never shown
    shown = show(tmp_path, store_env, reference)
    assert shown["state"] == "closed" and shown["report"]["contact"] == CONTACT
    assert shown["delivery_attempts"] == 1
    listed = agegate(["reports", "list", *APP], env(tmp_path, store_env))
    assert "answer not delivered" in listed.stdout
    assert agegate(["reports", "deliver", *APP], env(tmp_path, store_env)).returncode == 1
    (tmp_path / "mail_down").unlink()
    assert agegate(["reports", "deliver", *APP], env(tmp_path, store_env)).returncode == 0
    state = end_state(tmp_path, store_env, reference)
    assert {k: state[k] for k in EXPECTED} == EXPECTED
    assert show(tmp_path, store_env, reference)["delivery_attempts"] == 3
