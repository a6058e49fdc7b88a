"""One HTTP scenario suite, over real servers, for every framework agegate supports: Starlette,
FastAPI, Litestar and Quart under uvicorn, Django under gunicorn (WSGI) and uvicorn (ASGI).

Each shop (examples/frameworks/, examples/django_shop/) runs once per module, in a process of
its own with its own SQLite files; each scenario uses fresh clients (fresh cookies)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from agegate import AgeGate
from agegate.asgi.cookie import UNDER_AGE, GateCookie
from tests.framework_servers import STACKS, Shop, running

pytestmark = pytest.mark.slow

ADULT = {"birth_date": "1988-07-09"}
CHILD = {"birth_date": f"{time.gmtime().tm_year - 9}-05-02"}


@pytest.fixture(scope="module", params=list(STACKS))
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    data = tmp_path_factory.mktemp(request.param)
    with running(request.param, data) as shop:
        # Lifespan (or the Django middleware, as the server loads it) opened the store before any
        # request: its write-ahead log is there.
        deadline = time.monotonic() + 30
        while not shop.wal.exists():
            assert time.monotonic() < deadline, "the store was not opened at startup"
            time.sleep(0.05)
        yield shop
        # A graceful stop: uvicorn re-raises the SIGTERM it handled once it has shut down.
        assert shop.stop() in (0, -signal.SIGTERM)
        # ... and closed it at shutdown: SQLite removes the log when the last connection closes.
        assert not shop.wal.exists(), "the store was not closed at shutdown"


def client(shop: Shop) -> httpx.Client:
    return httpx.Client(base_url=shop.url, timeout=20)


def outcome(shop: Shop, response: httpx.Response) -> object:
    """What the gate's cookie set by ``response`` says: UNDER_AGE, an allowed Decision or None."""
    cookie = GateCookie(AgeGate(keys=shop.keys, store="memory://"), secure=False)
    found = response.cookies.get(cookie.name)
    return cookie.result(f"{cookie.name}={found}") if found else None


def test_an_unscreened_order_is_428(shop: Shop) -> None:
    with client(shop) as c:
        response = c.post("/orders", data={"product": "kite"})
        assert response.status_code == 428
        assert response.json() == {"error": "age_screen_required", "screen": "/agegate"}


def test_a_childs_answer_is_403_and_sticky(shop: Shop) -> None:
    with client(shop) as c:
        assert c.post("/agegate", json=CHILD).json() == {"outcome": "under_age"}
        refused = c.post("/orders", data={"product": "kite"})
        assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
        assert c.post("/agegate", json=ADULT).json() == {"outcome": "under_age"}
        assert c.post("/orders", data={"product": "kite"}).status_code == 403


def test_an_adult_places_an_order(shop: Shop) -> None:
    with client(shop) as c:
        screened = c.post("/agegate", json=ADULT)
        assert screened.json() == {"outcome": "allowed"} and outcome(shop, screened) is not None
        placed = c.post("/orders", data={"product": "tent"})
        assert placed.status_code == 201 and placed.json()["order"] > 0


def test_a_child_signup_is_403_and_a_retry_with_an_adult_date_too(shop: Shop) -> None:
    with client(shop) as c:
        refused = c.post("/signup", data={"username": "kid", **CHILD})
        assert refused.status_code == 403 and outcome(shop, refused) is UNDER_AGE
        retried = c.post("/signup", data={"username": "kid2", **ADULT})
        assert retried.status_code == 403 and retried.json() == {"error": "age_restricted"}
        assert c.post("/orders", data={"product": "kite"}).status_code == 403


def test_an_adult_signup_gets_the_allowed_cookie(shop: Shop) -> None:
    with client(shop) as c:
        made = c.post("/signup", data={"username": "ann", **ADULT})
        assert made.status_code == 201, made.text
        found = outcome(shop, made)
        assert found is not None and found is not UNDER_AGE
        assert made.headers["cache-control"] == "no-store"
        assert c.post("/orders", data={"product": "lamp"}).status_code == 201


def test_a_purged_logged_in_account_is_refused_at_once(shop: Shop) -> None:
    with client(shop) as c:
        account = c.post("/signup", data={"username": "bob", **ADULT}).json()["account"]
        assert c.post("/orders", data={"product": "kite"}).status_code == 201
        purged = shop.purge(account)
        assert purged.returncode == 0, purged.stderr
        # The same browser, still holding its allowed cookie and its session: refused now.
        refused = c.post("/orders", data={"product": "kite"})
        assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
    with client(shop) as other:  # a new device signing in to the purged account
        login = other.post("/login", data={"account": account})
        assert login.status_code in (200, 404)  # Django: the account's row went with the purge
        assert other.post("/agegate", json=ADULT).json() == {"outcome": "allowed"}
        if login.status_code == 200:
            assert other.post("/orders", data={"product": "kite"}).status_code == 403


def test_login_from_a_new_device_is_not_asked_for_the_screen(shop: Shop) -> None:
    with client(shop) as c:
        account = c.post("/signup", data={"username": "cy", **ADULT}).json()["account"]
    with client(shop) as other:
        assert other.post("/login", data={"account": account}).status_code == 200
        # Logged in as an adult account: its attestation counts without a screen cookie.
        assert other.post("/orders", data={"product": "kite"}).status_code == 201
