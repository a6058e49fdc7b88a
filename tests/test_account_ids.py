"""One account-id rule for every entry point (issue 15): an id that one of signup,
``signup_fields``, ``status_of``, the middleware's ``subject=``, the purge and the command line
accepts, all of them accept, and a purge can always reach an account a signup created."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agegate import AgeGate, AgeGateMiddleware, InvalidSignupForm, Keyring, signup_fields
from agegate.accounts import MAX_ACCOUNT_ID, check_account_id
from agegate.errors import InvalidAccountId
from agegate.purge.request import contains_secret
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio
ADULT = {"birth_date": "1990-01-01"}
TICKET, OPERATOR = "T-0", "support"

IDS = st.one_of(
    st.text(min_size=0, max_size=20),
    st.text(alphabet="abc123-_. \t\u200b\x00\u00e9", min_size=0, max_size=12),
    st.builds(lambda a, b: a + b, st.sampled_from(["", " ", "\t", "\u200b", "\n"]), st.text(max_size=8)),
    st.sampled_from(["x" * MAX_ACCOUNT_ID, "x" * (MAX_ACCOUNT_ID + 1), " acct-1", "acct-1 ", "acct-1"]),
)


class Request:
    """Just enough of a request for signup_fields: its scope."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {"type": "http"}


def accepted(check: Any) -> bool:
    try:
        check()
    except InvalidAccountId:
        return False
    return True


async def accepted_async(check: Any) -> bool:
    try:
        await check()
    except InvalidAccountId:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account=IDS)
async def test_every_entry_point_accepts_the_same_ids(account: str) -> None:
    assume(not contains_secret(TICKET, account) and not contains_secret(OPERATOR, account))
    gate = AgeGate(keys=Keyring.generate("ids"), store=MemoryStore())
    rule = accepted(lambda: check_account_id(account))
    assert accepted(lambda: gate.account_id(account)) is rule
    assert accepted(lambda: gate.purger.check_subject(account)) is rule  # the CLI's check
    assert await accepted_async(lambda: gate.status_of(account)) is rule
    assert await accepted_async(lambda: gate.cached_status(account)) is rule
    assert await accepted_async(lambda: gate.signup(ADULT, subject=account)) is rule
    try:
        await signup_fields(Request(), gate, {**ADULT, "name": account}, subject=lambda f: f["name"])  # type: ignore[arg-type]
        from_form = True
    except InvalidSignupForm:
        from_form = False
    assert from_form is rule

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = AgeGateMiddleware(app, gate=gate, subject=lambda scope: account)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/orders", "raw_path": b"/orders", "headers": []}
    if account:  # an empty id means "nobody is logged in"
        # One the gate refuses is refused with the request (503, logged), never a 500.
        await middleware(scope, receive, send)
        assert (sent[0]["status"] == 503) is not rule
    if rule:
        # The account a signup created is one a purge reaches.
        report = await gate.purge(account, ticket=TICKET, operator=OPERATOR)
        assert report.state == "done"
        assert await gate.status_of(account) == "under_age"
    else:
        with pytest.raises(InvalidAccountId):
            await gate.purge(account, ticket=TICKET, operator=OPERATOR)


async def test_an_id_with_a_space_around_it_is_refused_at_signup_as_at_the_purge() -> None:
    gate = AgeGate(keys=Keyring.generate("ids"), store=MemoryStore())
    with pytest.raises(InvalidAccountId) as refused:
        await gate.signup(ADULT, subject=" acct-1")
    assert "acct-1" not in str(refused.value)
    with pytest.raises(InvalidAccountId):
        await gate.purge(" acct-1", ticket=TICKET, operator=OPERATOR)
    assert await gate.status_of("acct-1") == "unknown"  # nothing was stored


async def test_the_apps_own_format_holds_at_every_entry_point() -> None:
    gate = AgeGate(keys=Keyring.generate("ids"), store=MemoryStore())
    gate.purger.subject_format(r"[0-9]{1,9}", "a numeric account id")
    await gate.signup(ADULT, subject="351")
    for entry in (
        lambda: gate.signup(ADULT, subject="acct-351"),
        lambda: gate.status_of("acct-351"),
        lambda: gate.purge("acct-351", ticket=TICKET, operator=OPERATOR),
    ):
        with pytest.raises(InvalidAccountId, match=re.escape("a numeric account id")):
            await entry()
