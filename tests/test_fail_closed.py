"""Fail closed, for every configuration: whatever options the middleware is given and whatever
state its store is in, a visitor the gate has refused never reaches the app on a path the
configuration gates, and an option set wrong is refused when the middleware is built.

Options and visitors are drawn by hypothesis; the oracle for "gated" is the documented rule on
plain paths (odd paths are the business of ``test_paths.py``).
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_asgi import http_scope, send_through
from test_store_timeout import StallingStore

from agegate import (
    AgeGate,
    AgeGateMiddleware,
    AgePolicy,
    ConfigurationError,
    Keyring,
    StoreError,
    StoreUnavailable,
)
from agegate.asgi.cookie import cookie_name

KEYS = Keyring.generate("closed")
PATHS = ["/checkout/pay", "/signup", "/api/health", "/blog/post", "/account/delete", "/agegate/report"]


def matches(pattern: str, path: str) -> bool:
    return (pattern.endswith("/*") and path == pattern[:-2]) or fnmatch.fnmatchcase(path, pattern)


def gated(path: str, protect: list[str] | None, exempt: list[str], signup: list[str], prefix: str) -> bool:
    if any(matches(p, path) for p in signup):
        return True
    if protect is not None and not any(matches(p, path) for p in protect):
        return False
    if path == prefix or path.startswith(prefix + "/"):
        return False
    return not any(matches(p, path) for p in exempt)


CONFIG = st.fixed_dictionaries(
    {
        "prefix": st.sampled_from(["/agegate", "/age-check"]),
        "protect": st.sampled_from([None, [], ["/checkout/*"], ["/checkout/*", "/account/*"], ["/*"]]),
        "exempt": st.sampled_from([[], ["/api/health"], ["/api/*", "/blog/*"], ["/checkout/pay"]]),
        "signup_paths": st.sampled_from([[], ["/signup"], ["/signup", "/account/*"]]),
        "secure_cookies": st.booleans(),
        "cookie_name": st.sampled_from([None, "shop"]),
        "origins": st.sampled_from([(), ["https://shop.example"]]),
        "trust_forwarded_host": st.booleans(),
        "logged_in": st.booleans(),
        # 49: an app's region function that answers what no region code is; "raise": one that
        # raises.
        "region": st.sampled_from([None, "US", "DE", "ZZ", 49, "raise"]),
    }
)
VISITOR = st.sampled_from(
    [
        "child_cookie",
        "no_result",
        "child_account",
        "store_down",
        "store_broken",
        "us_result",
        "wrong_account",
        "subject_raises",
    ]
)


class App:
    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def sealed(outcome: str, policy: str = "") -> str:
    now = int(time.time())
    gate = AgeGate(keys=KEYS, store="memory://")
    label = policy or gate.policy.name
    return gate.sealer.seal(outcome, label, issued_at=now, expires_at=now + 3600)  # type: ignore[arg-type]


CHILD, ADULT = sealed("under_age"), sealed("allowed")
#: Allowed under US rules (13): not enough where a region asks more (DE 16, an unknown one 18).
US_ADULT = sealed("allowed", AgePolicy.for_region("US").label)


async def ask(middleware: AgeGateMiddleware, method: str, path: str, cookie: str | None, account: str) -> int:
    headers = [(b"x-account", account.encode())]
    if cookie:
        headers.append((b"cookie", f"{middleware.cookie_name}={cookie}".encode()))
    sent = await send_through(middleware, http_scope(method, path, headers))
    return int(sent[0]["status"])


def account_of(scope: Any) -> str | None:
    account = dict(scope["headers"]).get(b"x-account", b"").decode() or None
    if account == "raise":
        raise LookupError("the app's session store is down")
    return account


def raising(scope: Any) -> str | None:
    raise RuntimeError("the app's geo lookup failed")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    config=CONFIG, visitor=VISITOR, path=st.sampled_from(PATHS), method=st.sampled_from(["POST", "DELETE"])
)
@pytest.mark.anyio
async def test_a_refused_visitor_never_reaches_a_gated_path(
    config: dict[str, Any], visitor: str, path: str, method: str
) -> None:
    store = StallingStore()
    gate = AgeGate(keys=KEYS, store=store, store_timeout=0.05)
    await gate.record("kid", "under_age")
    await gate.record("bob", "allowed")
    options = dict(config)
    logged_in = options.pop("logged_in") or visitor in (
        "child_account",
        "store_down",
        "store_broken",
        "wrong_account",
        "subject_raises",
    )
    code = options.pop("region")
    region = None if code is None else raising if code == "raise" else lambda scope: code
    app = App()
    middleware = AgeGateMiddleware(
        app, gate=gate, subject=account_of if logged_in else None, region=region, **options
    )
    if not options["cookie_name"]:
        assert middleware.cookie_name == cookie_name(KEYS, secure=options["secure_cookies"])
    cookie, account = {
        "child_cookie": (CHILD, "bob"),
        "no_result": (None, ""),
        "child_account": (ADULT, "kid"),
        "store_down": (ADULT, "bob"),
        "store_broken": (ADULT, "bob"),
        "us_result": (US_ADULT, ""),
        "wrong_account": (ADULT, " kid"),  # subject= gives an id the gate refuses
        "subject_raises": (ADULT, "raise"),  # subject= raises
    }[visitor]
    if visitor == "store_down":
        store.failing = StoreUnavailable("the store is down")
    elif visitor == "store_broken":
        store.failing = StoreError("the store is damaged")
    is_gated = gated(path, options["protect"], options["exempt"], options["signup_paths"], options["prefix"])
    is_signup = any(matches(p, path) for p in options["signup_paths"])

    status = await ask(middleware, method, path, cookie, account)

    if path == options["prefix"] + "/report":
        # The gate's own report form, open to everyone, answers itself (an empty report: 400,
        # a DELETE: 405); the app is never called there.
        assert not app.called and status == (400 if method == "POST" else 405)
    elif not is_gated:
        assert app.called and status == 200
    elif code in (49, "raise") or visitor in ("wrong_account", "subject_raises"):
        assert not app.called and status == 503  # the app's function is wrong: refused, not a 500
    elif visitor in ("child_cookie", "child_account"):
        assert not app.called and status == 403
    elif visitor in ("store_down", "store_broken"):
        assert not app.called and status == 503
    elif visitor == "us_result" and code in (None, "US"):
        assert app.called and status == 200
    elif is_signup:
        assert app.called  # no result yet: the app's signup hook screens inline
    else:
        assert not app.called and status == 428


BAD_OPTIONS = [
    {"protect": "/checkout/*"},
    {"protect": ["checkout"]},
    {"protect": [None]},
    {"exempt": "/api/health"},
    {"exempt": [b"/api"]},
    {"signup_paths": "/signup"},
    {"signup_paths": ["/sign up"]},
    {"prefix": "agegate"},
    {"prefix": "/agegate/"},
    {"prefix": ""},
    {"subject": "user_id"},
    {"secure_cookies": "yes"},
    {"cookie_name": "a b"},
    {"cookie_name": ""},
    {"origins": "https://shop.example"},
    {"origins": ["https://shop.example/path"]},
    {"origins": ["shop.example"]},
    {"trust_forwarded_host": "true"},
    {"pages": object()},
    {"region": "cf-ipcountry"},
]


@pytest.mark.parametrize(
    "options", BAD_OPTIONS, ids=[next(iter(o)) + "=" + repr(next(iter(o.values()))) for o in BAD_OPTIONS]
)
def test_an_option_set_wrong_is_refused_when_built(options: dict[str, Any]) -> None:
    gate = AgeGate(keys=KEYS, store="memory://")
    with pytest.raises(ConfigurationError):
        AgeGateMiddleware(App(), gate=gate, **options)


def _raises_with_the_id(scope: Any) -> str | None:
    raise KeyError("kid-4471")


@pytest.mark.parametrize(
    "subject",
    [lambda scope: " kid-4471", lambda scope: "kid-4471" * 100, lambda scope: 4471, _raises_with_the_id],
    ids=["spaces around", "too long", "not a string", "raises"],
)
@pytest.mark.anyio
async def test_a_wrong_subject_function_is_refused_and_logged_without_the_id(
    subject: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gate = AgeGate(keys=KEYS, store="memory://")
    app = App()
    middleware = AgeGateMiddleware(app, gate=gate, subject=subject)
    headers = [(b"cookie", f"{middleware.cookie_name}={ADULT}".encode())]
    with caplog.at_level("DEBUG"):
        sent = await send_through(middleware, http_scope("POST", "/checkout", headers))
    assert sent[0]["status"] == 503 and not app.called
    assert "subject=" in caplog.text and "4471" not in caplog.text
