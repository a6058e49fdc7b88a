"""The signup hook examples, copied out of docs/signup.md and run as written."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agegate import Keyring, StoreUnavailable
from agegate.asgi.cookie import cookie_name

pytestmark = pytest.mark.anyio

PAGE = Path(__file__).resolve().parent.parent / "docs" / "signup.md"


def readme_example(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("# The signup hook\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    found = [b for b in blocks if b.startswith(f"# app.py ({title})\n")]
    assert len(found) == 1, f"docs/signup.md should have one {title} example"
    return found[0]


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (startup before, shutdown after), as a server would."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](2)
    to_server, server_inbox = anyio.create_memory_object_stream[dict[str, Any]](2)

    async def send(message: dict[str, Any]) -> None:
        await to_server.send(message)

    async with anyio.create_task_group() as tg, to_app, app_inbox, to_server, server_inbox:
        tg.start_soon(
            app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, app_inbox.receive, send
        )
        await to_app.send({"type": "lifespan.startup"})
        assert (await server_inbox.receive())["type"] == "lifespan.startup.complete"
        yield
        await to_app.send({"type": "lifespan.shutdown"})
        assert (await server_inbox.receive())["type"] == "lifespan.shutdown.complete"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")


@pytest.mark.parametrize("title", ["Starlette", "FastAPI"])
async def test_readme_signup_example_runs(
    title: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keyring.generate("readme")
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", keys.to_string())
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///agegate.sqlite3 lands here
    namespace: dict[str, Any] = {"__name__": "readme_app"}
    exec(compile(readme_example(title), f"docs/signup.md ({title})", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]

    async with serving(app), client(app) as browser:
        adult = await browser.post("/signup", data={"birth_date": "04/23/1990", "email": "ada@example.com"})
        assert adult.status_code == 201, adult.text
        account = adult.json()["account"]
        assert adult.json() == {"account": account, "email": "ada@example.com"}
        assert gate.sealer.open(adult.cookies[cookie_name(gate.keys)]).outcome == "allowed"
        assert await gate.status_of(account) == "allowed"

        bad = await browser.post("/signup", data={"birth_date": "02/30/1990"})
        assert bad.status_code == 400 and bad.json()["code"] == "impossible"
        form = await browser.post(
            "/signup", content=b"--x--", headers={"content-type": "multipart/form-data"}
        )
        assert form.status_code == 415 and form.json() == {"error": "unsupported_media_type"}

        async def outage(*args: Any, **kwargs: Any) -> bool:
            raise StoreUnavailable("the store is down (test)")

        with monkeypatch.context() as m:
            m.setattr(gate._store, "swap_attestation", outage)
            async with client(app) as later:
                down = await later.post(
                    "/signup", data={"birth_date": "1990-01-01", "email": "b@example.com"}
                )
            assert down.status_code == 503 and down.json() == {"error": "store_unavailable"}
            assert down.headers["retry-after"] == "5"
            assert cookie_name(gate.keys) not in down.cookies  # nothing decided, nothing remembered

        async with client(app) as child_browser:
            child = await child_browser.post(
                "/signup", json={"birth_year": "2020", "email": "kid@example.com"}
            )
            assert child.status_code == 403 and child.json() == {"error": "age_restricted"}
            assert gate.sealer.open(child.cookies[cookie_name(gate.keys)]).outcome == "under_age"
            again = await child_browser.post("/signup", data={"birth_date": "1990-01-01"})
            assert again.status_code == 403  # the sticky cookie: no second try

    assert not gate._opened  # the lifespan closed the store

    assert (tmp_path / "agegate.sqlite3").is_file()
    assert b"ada@example.com" not in (tmp_path / "agegate.sqlite3").read_bytes()
