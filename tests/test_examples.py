"""The example shops end to end over HTTP, on real SQLite files; and ``agegate demo``."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agegate import AgeGate, Keyring, StoreUnavailable
from agegate.cli import main

HTML = {"accept": "text/html"}
ADULT = {"birth_year": "1988", "birth_month": "7", "birth_day": "9"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 9), "birth_month": "5", "birth_day": "2"}


@pytest.fixture(params=["starlette_app", "fastapi_app"])
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Path]]:
    module = __import__(f"examples.{request.param}", fromlist=["create_app"])
    app = module.create_app(keys=Keyring.generate("ex"), data_dir=tmp_path)
    async with app.router.lifespan_context(app):
        yield app, tmp_path


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example")


def account_id(app: Any, data_dir: Path) -> str:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(data_dir / "shop.sqlite3")) as db:
        (found,) = db.execute("SELECT id FROM accounts").fetchone()
    return str(found)


@pytest.mark.anyio
async def test_adult_screens_signs_up_edits_profile_and_checks_out(shop: tuple[Any, Path]) -> None:
    app, data_dir = shop
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200
        blocked = await c.post("/checkout", data={"product": "kite"}, headers=HTML)
        assert blocked.status_code == 428 and "/agegate?next=/checkout" in blocked.text
        screened = await c.post("/agegate", data={**ADULT, "next": "/signup"}, headers=HTML)
        assert screened.status_code == 303 and screened.headers["location"] == "/signup"
        signup = {"username": "ann", "email": "ann@example.org", **ADULT}
        made = await c.post("/signup", data=signup, headers=HTML)
        assert made.status_code == 303 and made.headers["location"] == "/profile"
        saved = await c.post("/profile", data={"display_name": "Ann", "city": "Oslo"})
        assert saved.status_code == 303
        assert "Oslo" in (await c.get("/profile")).text
        ordered = await c.post("/checkout", data={"product": "tent"})
        assert ordered.status_code == 303
        assert "A two-person tent" in (await c.get("/checkout")).text

    gate: AgeGate = app.state.gate
    subject = account_id(app, data_dir)
    assert await gate.status_of(subject) == "allowed"
    # Nothing the person typed about themselves reaches the gate's database.
    stored = b"".join(p.read_bytes() for p in data_dir.glob("agegate.sqlite3*"))
    for secret in (b"1988", subject.encode(), b"ann@example.org"):
        assert secret not in stored


@pytest.mark.anyio
async def test_a_signup_while_the_store_is_down_is_a_503_and_makes_no_account(
    shop: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, data_dir = shop

    async def outage(*args: Any, **kwargs: Any) -> bool:
        raise StoreUnavailable("the store is down (test)")

    monkeypatch.setattr(app.state.gate._store, "swap_attestation", outage)
    async with client(app) as c:
        signup = {"username": "bo", "email": "bo@example.org", **ADULT}
        down = await c.post("/signup", data=signup, headers=HTML)
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert "try again in a moment" in down.text
    assert not down.cookies  # neither the gate's cookie nor a session
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(data_dir / "shop.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM accounts").fetchone() == (0,)


@pytest.mark.anyio
async def test_child_is_refused_inline_and_stays_refused(shop: tuple[Any, Path]) -> None:
    app, data_dir = shop
    async with client(app) as c:
        refused = await c.post("/signup", data={"username": "kid", "email": "kid@example.org", **CHILD})
        assert refused.status_code == 403
        assert "try again" not in refused.text.lower()
        assert "max-age=2592000" in refused.headers["set-cookie"].lower()
        again = await c.post("/signup", data={"username": "kid2", "email": "k2@example.org", **ADULT})
        assert again.status_code == 403
        assert (await c.post("/checkout", data={"product": "kite"})).status_code == 403
        assert (await c.get("/checkout")).status_code == 200  # reading stays open
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(data_dir / "shop.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM accounts").fetchone() == (0,)


@pytest.mark.anyio
async def test_bad_signup_input_is_shown_again(shop: tuple[Any, Path]) -> None:
    app, _ = shop
    async with client(app) as c:
        bad = {
            "username": "bo",
            "email": "bo@example.org",
            "birth_year": "1990",
            "birth_month": "2",
            "birth_day": "31",
        }
        response = await c.post("/signup", data=bad)
        assert response.status_code == 400
        assert 'value="bo@example.org"' in response.text and 'role="alert"' in response.text
        assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_purge_handlers_delete_the_shops_rows(shop: tuple[Any, Path]) -> None:
    app, data_dir = shop
    gate: AgeGate = app.state.gate
    assert set(gate.purger.names) >= {"orders", "profiles", "accounts"}
    async with client(app) as c:
        await c.post("/signup", data={"username": "cy", "email": "cy@example.org", **ADULT})
        await c.post("/profile", data={"display_name": "Cy", "city": "Rome"})
        await c.post("/checkout", data={"product": "lamp"})
        await c.post("/checkout", data={"product": "kite"})
        subject = account_id(app, data_dir)
        report = await gate.purge(subject, ticket="T-1", operator="support")
        assert report.deleted["orders"] == 2 and report.deleted["profiles"] == 1
        assert report.deleted["accounts"] == 2  # the account row and its session
        assert await gate.status_of(subject) == "under_age"
        # the logged-out browser can still read, and the purged account is gone
        assert (await c.get("/profile")).status_code == 303


def links(page: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', page)


@pytest.mark.anyio
@pytest.mark.parametrize("mounted", ["mount", "root_path"])
async def test_the_shop_works_under_a_sub_path(shop: tuple[Any, Path], mounted: str) -> None:
    """Mounted at /shop (a Starlette Mount, or a server's --root-path behind a proxy that
    strips /shop), every link, form, redirect and cookie stays under /shop."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    app, _ = shop
    if mounted == "mount":
        host: Any = Starlette(routes=[Mount("/shop", app=app), Route("/", PlainTextResponse("other app"))])
        transport = httpx.ASGITransport(app=host)
    else:
        transport = httpx.ASGITransport(app=app, root_path="/shop")  # uvicorn --root-path /shop
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        home = await c.get("/shop/")
        assert home.status_code == 200 and "Trail Shop" in home.text
        assert links(home.text) and all(link.startswith("/shop/") for link in links(home.text))
        blocked = await c.post("/shop/checkout", data={"product": "kite"}, headers=HTML)
        assert blocked.status_code == 428 and 'href="/shop/agegate?next=/shop/checkout"' in blocked.text
        screen = await c.get("/shop/agegate?next=/shop/signup", headers=HTML)
        assert all(link.startswith("/shop/") for link in links(screen.text))
        screened = await c.post("/shop/agegate", data={**ADULT, "next": "/shop/signup"}, headers=HTML)
        assert screened.status_code == 303 and screened.headers["location"] == "/shop/signup"
        form = await c.get("/shop/signup")
        assert all(link.startswith("/shop/") for link in links(form.text))
        made = await c.post("/shop/signup", data={"username": "ann", "email": "ann@example.org", **ADULT})
        assert made.status_code == 303 and made.headers["location"] == "/shop/profile"
        assert "path=/shop;" in made.headers["set-cookie"].lower()
        profile = await c.get("/shop/profile")
        assert "Signed in as ann" in profile.text
        assert all(link.startswith("/shop/") for link in links(profile.text))
        saved = await c.post("/shop/profile", data={"display_name": "Ann", "city": "Oslo"})
        assert saved.headers["location"] == "/shop/profile?saved=1"
        ordered = await c.post("/shop/checkout", data={"product": "tent"})
        assert ordered.headers["location"] == "/shop/checkout?placed=1"
        assert "A two-person tent" in (await c.get("/shop/checkout")).text
        out = await c.post("/shop/logout")
        assert out.headers["location"] == "/shop/"
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as child:
        refused = await child.post(
            "/shop/signup", data={"username": "kid", "email": "k@example.org", **CHILD}
        )
        assert refused.status_code == 403
        assert all(link.startswith("/shop/") for link in links(refused.text))


def test_demo_explains_a_missing_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import agegate.cli.demo as demo

    monkeypatch.setattr(demo, "_CHECKOUT", Path("/nonexistent"))
    assert main(["demo"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_demo_refuses_ephemeral_keys_over_data_kept_from_another_run(tmp_path: Path) -> None:
    import asyncio
    import os
    import subprocess
    import sys

    async def earlier_run() -> None:  # what an earlier `agegate demo --data-dir` left behind
        async with AgeGate(
            keys=Keyring.generate("demo"), store=f"sqlite:///{tmp_path}/agegate.sqlite3"
        ) as gate:
            await gate.record("acct-1", "under_age")

    asyncio.run(earlier_run())
    env = {k: v for k, v in os.environ.items() if k != "AGEGATE_SECRET_KEYS"}
    command = [
        sys.executable,
        "-m",
        "agegate",
        "demo",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "was written under other keys" in done.stderr and "'demo'" in done.stderr
    assert "Traceback" not in done.stderr and "open http" not in done.stdout


def test_demo_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"--host", out) and re.search(r"--port", out)


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_demo_refuses_a_bad_port_as_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--port", port])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "is not a port number" in err and "Traceback" not in err


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_agegate_demo_serves_the_shop(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGEGATE_SECRET_KEYS"}
    command = [sys.executable, "-m", "agegate", "demo", "--port", str(port), "--data-dir", str(tmp_path)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    home = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "the demo did not start"
                    time.sleep(0.1)
            assert home.status_code == 200 and "Trail Shop" in home.text
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
                assert c.post("/agegate", json={"birth_date": "1990-01-01"}).json() == {"outcome": "allowed"}
                assert c.post("/checkout", data={"product": "kite"}).status_code == 303
        finally:
            proc.terminate()
            output, _ = proc.communicate(timeout=10)
    assert "EPHEMERAL" in output
    assert (tmp_path / "agegate.sqlite3").exists()
    assert proc.returncode == 0  # SIGTERM stops it cleanly


def test_agegate_demo_removes_its_temporary_folder() -> None:
    import os
    import re
    import subprocess
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGEGATE_SECRET_KEYS"}
    command = [sys.executable, "-m", "agegate", "demo", "--port", str(port)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "open http" in line:
                break
        proc.terminate()
        rest, _ = proc.communicate(timeout=10)
    found = re.search(r"data in (\S+) \(SQLite\)", "".join(lines))
    assert found, "".join(lines) + rest
    assert proc.returncode == 0, "".join(lines) + rest
    assert not Path(found.group(1)).exists()


@pytest.mark.anyio
async def test_the_signup_form_has_the_screens_date_control(shop: tuple[Any, Path]) -> None:
    from agegate import Pages

    app, _ = shop
    async with client(app) as c:
        signup = (await c.get("/signup", headers={"accept": "text/html"})).text
        screen = (await c.get("/agegate", headers={"accept": "text/html"})).text
    control = Pages().date_fields()
    assert control in signup and control in screen  # one date control, the same everywhere
    assert ">January</option>" in signup and ">01</option>" not in signup


@pytest.mark.anyio
async def test_the_shop_links_the_report_page_and_answers_reports_by_its_outbox(
    shop: tuple[Any, Path],
) -> None:
    app, data_dir = shop
    async with client(app) as c:
        home = await c.get("/", headers=HTML)
        assert '<footer><a href="/agegate/report">Report a child' in home.text
        form = await c.get("/agegate/report", headers=HTML)
        assert form.status_code == 200 and 'name="account"' in form.text
        sent = await c.post(
            "/agegate/report",
            data={"account": "ann", "relation": "parent", "contact": "dad@example.net"},
            headers=HTML,
        )
        assert sent.status_code == 303
    reference = sent.headers["location"].split("ref=")[1]
    gate: AgeGate = app.state.gate
    closed = await gate.reports.close(reference, reason="no-account")
    assert closed.record.state == "delivered"
    mail = (data_dir / "outbox" / f"{reference}.txt").read_text()
    assert mail.startswith("To: dad@example.net") and "no-account" in mail
