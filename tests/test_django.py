"""agegate.django in-process: the test client (sync, WSGI handler) and async client (ASGI
handler), the system checks, the signup helper, and the purge command with model handlers.
The same shop runs under gunicorn and uvicorn in tests/test_frameworks_http.py."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agegate import Keyring

ADULT = {"birth_date": "1988-07-09"}
CHILD = {"birth_date": f"{time.gmtime().tm_year - 9}-05-02"}
SHOP_GATE = "examples.django_shop.gate:gate"


@pytest.fixture(scope="module", autouse=True)
def django_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("django")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("dj").to_string())
        patch.setenv("AGEGATE_STORE", f"sqlite:///{data / 'agegate.sqlite3'}")
        patch.setenv("SHOP_DB", str(data / "shop.sqlite3"))
        patch.setenv("SHOP_SESSION_SECRET", "5e" * 32)
        patch.setenv("SHOP_DEV", "1")
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_shop.settings")
        patch.delenv("AGEGATE_APP", raising=False)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield data


def test_check_is_clean_with_the_app_installed() -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"AGEGATE": {"gate": "examples.django_shop.settings:DEBUG"}}, "agegate.E001"),
        ({"AGEGATE": {"gate": "examples.django_shop.gate:gate", "protekt": []}}, "agegate.E001"),
        ({"AGEGATE": {"gate": SHOP_GATE, "region": "cf-ipcountry"}}, "agegate.E001"),
        ({"AGEGATE": {"gate": SHOP_GATE, "signal": "test_django:ADULT"}}, "agegate.E001"),  # no function
        ({"AGEGATE": {"gate": SHOP_GATE, "locale": "no_such_module:f"}}, "agegate.E001"),
        ({"AGEGATE": {"gate": SHOP_GATE, "mode": "reads"}}, "agegate.E001"),
        ({"AGEGATE": {"gate": SHOP_GATE, "protect": ["orders"]}}, "agegate.E001"),  # not a path
        ({"AGEGATE": {"gate": SHOP_GATE, "exempt": None}}, "agegate.E001"),
        ({"MIDDLEWARE": ["django.contrib.sessions.middleware.SessionMiddleware"]}, "agegate.E002"),
        (
            {
                "MIDDLEWARE": [
                    "django.contrib.sessions.middleware.SessionMiddleware",
                    "agegate.django.AgeGateMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                ]
            },
            "agegate.E003",
        ),
    ],
)
def test_check_reports_a_misconfiguration(change: dict[str, Any], code: str) -> None:
    from django.test import override_settings

    from agegate.django.apps import check_settings
    from agegate.django.config import get_gate

    get_gate.cache_clear()
    try:
        with override_settings(**change):
            assert code in [message.id for message in check_settings()]
    finally:
        get_gate.cache_clear()


def test_the_gate_through_the_test_client() -> None:
    from django.test import Client

    c = Client()
    required = c.post("/orders", {"product": "kite"})
    assert required.status_code == 428 and required.json()["error"] == "age_screen_required"
    page = c.get("/agegate?next=/orders", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and 'name="birth_year"' in page.content.decode()
    assert c.post("/agegate", ADULT, content_type="application/json").json() == {"outcome": "allowed"}
    assert c.post("/orders", {"product": "kite"}).status_code == 201
    kid = Client()
    assert kid.post("/agegate", CHILD, content_type="application/json").json() == {"outcome": "under_age"}
    assert kid.post("/orders", {"product": "kite"}).status_code == 403
    assert kid.post("/agegate", ADULT, content_type="application/json").json() == {"outcome": "under_age"}


def test_signup_through_the_test_client_sets_the_cookie_and_rolls_a_child_back() -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    c = Client()
    made = c.post("/signup", {"username": "dora", **ADULT})
    assert made.status_code == 201 and made["Cache-Control"] == "no-store"
    assert any(name.startswith("agegate-") for name in made.cookies)
    kid = Client()
    assert kid.post("/signup", {"username": "kiddo", **CHILD}).status_code == 403
    assert not get_user_model().objects.filter(username="kiddo").exists()  # rolled back
    assert kid.post("/signup", {"username": "kiddo", **ADULT}).status_code == 403  # sticky


@pytest.mark.anyio
async def test_the_gate_through_the_async_client() -> None:
    from django.test import AsyncClient

    c = AsyncClient()
    assert (await c.post("/orders", {"product": "kite"})).status_code == 428
    made = await c.post("/signup", {"username": "eve", **ADULT})
    assert made.status_code == 201
    assert (await c.post("/orders", {"product": "kite"})).status_code == 201
    kid = AsyncClient()
    assert (await kid.post("/signup", {"username": "tiny", **CHILD})).status_code == 403
    assert (await kid.post("/orders", {"product": "kite"})).status_code == 403


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    from django.contrib.auth import get_user_model

    from examples.django_shop.models import Order, OrderLine

    return {
        "users": sorted(get_user_model().objects.values_list("id", "username", "password")),
        "orders": sorted(Order.objects.values_list("id", "user_id", "product")),
        "lines": sorted(OrderLine.objects.values_list("id", "order_id", "quantity")),
    }


def _checksum(rows: dict[str, list[tuple[Any, ...]]], *, without: Any) -> str:
    """A hash of every row that is not the purged user's (nor hangs from one of them)."""
    orders = {row[0] for row in rows["orders"] if row[1] == without}
    kept = {
        "users": [r for r in rows["users"] if r[0] != without],
        "orders": [r for r in rows["orders"] if r[1] != without],
        "lines": [r for r in rows["lines"] if r[1] not in orders],
    }
    return hashlib.sha256(json.dumps(kept, default=str).encode()).hexdigest()


def test_purge_command_deletes_the_users_rows_through_the_collector_and_nothing_else() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    from examples.django_shop.models import Order, OrderLine

    users = [get_user_model().objects.create_user(username=f"p{i}") for i in range(3)]
    for user in [*users, None]:
        for product in ("kite", "tent"):
            OrderLine.objects.create(order=Order.objects.create(user=user, product=product), quantity=2)
    target = users[1]
    before = _rows()
    words = ["purge", "--subject", str(target.pk), "--ticket", "T-9", "--operator", "qa", "--yes"]

    with pytest.raises(CommandError):  # "042" is not the key's canonical text: nothing deleted
        call_command("agegate", *[w if w != str(target.pk) else f"0{target.pk}" for w in words])
    assert _rows() == before

    call_command("agegate", *words)
    after = _rows()
    assert not get_user_model().objects.filter(pk=target.pk).exists()
    assert not Order.objects.filter(user_id=target.pk).exists()
    assert len(after["lines"]) == len(before["lines"]) - 2  # the CASCADE from its orders
    assert _checksum(after, without=target.pk) == _checksum(before, without=target.pk)
    os.environ.pop("AGEGATE_APP", None)


@pytest.mark.anyio
async def test_asignup_in_an_async_view_tells_the_middleware() -> None:
    from django.http import HttpRequest, JsonResponse
    from django.test import AsyncClient, override_settings
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    from agegate import UnderAgeError
    from agegate.django import asignup

    @csrf_exempt
    async def signup(request: HttpRequest) -> JsonResponse:
        try:
            fields = await asignup(request, request.POST, subject=request.POST["username"])
        except UnderAgeError:
            return JsonResponse({"error": "age_restricted"}, status=403)
        return JsonResponse(fields, status=201)

    class AsyncURLs:
        urlpatterns = (path("signup", signup),)

    with override_settings(ROOT_URLCONF=AsyncURLs):
        adult = await AsyncClient().post("/signup", {"username": "ava", **ADULT})
        assert adult.status_code == 201
        assert adult.json() == {"username": "ava"}  # the birth date is gone
        kid = AsyncClient()
        assert (await kid.post("/signup", {"username": "tot", **CHILD})).status_code == 403
        # The middleware wrote the sticky under-age cookie: an adult's date does not pass now.
        assert (await kid.post("/signup", {"username": "tot2", **ADULT})).status_code == 403


FOURTEEN = {"birth_date": f"{time.gmtime().tm_year - 15}-01-01"}  # 14 or 15 today: under 16


def country(scope: Any) -> str | None:
    """The app's region function for the Django tests: the visitor's country, from a header."""
    for name, value in scope["headers"]:
        if name == b"cf-ipcountry":
            return str(value.decode())
    return None


def play_signal(scope: Any) -> Any:
    from agegate import AgeSignal

    for name, value in scope["headers"]:
        if name == b"x-age-signal":
            return AgeSignal.from_google_play(json.loads(value))
    return None


def settings_with(**options: Any) -> Any:
    from django.conf import settings
    from django.test import override_settings

    return override_settings(AGEGATE={**settings.AGEGATE, **options})


def test_region_signal_and_mode_are_the_middlewares_options_in_django() -> None:
    from django.test import Client

    # region= as "MODULE:ATTR": a 14-year-old passes where 13 is the age, not where it is 16.
    with settings_with(region="test_django:country"):
        c = Client()
        said = c.post("/agegate", FOURTEEN, content_type="application/json", HTTP_CF_IPCOUNTRY="US")
        assert said.json() == {"outcome": "allowed"}
        german = Client()
        said = german.post("/agegate", FOURTEEN, content_type="application/json", HTTP_CF_IPCOUNTRY="DE")
        assert said.json() == {"outcome": "under_age"}
        assert german.post("/orders", {"product": "kite"}, HTTP_CF_IPCOUNTRY="DE").status_code == 403
    # signal= as a callable: a mobile client's under-age signal is refused.
    under = json.dumps({"userStatus": "SUPERVISED", "ageLower": 0, "ageUpper": 12})
    with settings_with(signal=play_signal):
        refused = Client().post("/orders", {"product": "kite"}, HTTP_X_AGE_SIGNAL=under)
        assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
    # mode="all": a read of a gated page needs a result too (not passed on as a read).
    with settings_with(mode="all", protect=["/orders"]):
        assert Client().get("/orders").status_code == 428
        assert Client().get("/agegate").status_code == 200  # the screen itself stays open
    assert Client().get("/orders").status_code != 428  # in the default mode, reads pass


@pytest.mark.anyio
async def test_mode_all_gates_reads_through_the_async_client_too() -> None:
    from django.test import AsyncClient

    with settings_with(mode="all", protect=["/orders"]):
        assert (await AsyncClient().get("/orders")).status_code == 428
