"""No refused visitor's address reaches a log when the server runs the way docs/integration.md says.

uvicorn logs every websocket it accepts (the gate accepts a refused one, then closes it with
1008) with the client's address at INFO, and every request in its access log. The servers here
listen on 127.0.0.2 and the visitor comes from 127.0.0.1, so "127.0.0.1" in the output can only
be the visitor's address; a run with uvicorn's default logging shows that it would be there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from servers import websocket_events

from agegate import Keyring

CHECKOUT = Path(__file__).resolve().parent.parent
SERVER = "127.0.0.2"
VISITOR = "127.0.0.1"
CHILD = {"birth_date": f"{time.gmtime().tm_year - 8}-01-01"}
#: How docs/integration.md says to run the example shop.
DOCUMENTED = ["--no-access-log", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((SERVER, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(command: list[str], port: int, tmp_path: Path) -> Iterator[list[str]]:
    """Run ``command``; yield a list that holds everything it wrote once it has stopped."""
    env = {
        **os.environ,
        "AGEGATE_SECRET_KEYS": Keyring.generate("logs").to_string(),
        "SHOP_DATA_DIR": str(tmp_path),
    }
    output: list[str] = []
    with subprocess.Popen(
        command, cwd=CHECKOUT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection((SERVER, port), timeout=1):
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            yield output
        finally:
            proc.terminate()
            output.append(proc.communicate(timeout=15)[0])


def websocket_close_code(port: int, cookie: str | None) -> int:
    """Open a websocket from the visitor's address; the close code the server sent."""
    from wsproto.events import CloseConnection

    with socket.socket() as sock:
        sock.settimeout(5)
        sock.bind((VISITOR, 0))
        sock.connect((SERVER, port))
        headers = [(b"cookie", cookie.encode())] if cookie else []
        events = websocket_events(sock, f"{SERVER}:{port}", "/checkout", headers)
    ends = [e for e in events if isinstance(e, CloseConnection)]
    assert ends, events
    return int(ends[0].code)


def refuse_a_child(port: int) -> None:
    """From the visitor's address: a child answers the screen, then is refused a POST and two
    websockets (one with the under-age cookie, one with none)."""
    transport = httpx.HTTPTransport(local_address=VISITOR)
    with httpx.Client(transport=transport, base_url=f"http://{SERVER}:{port}") as browser:
        answered = browser.post("/agegate", json=CHILD)
        assert answered.json() == {"outcome": "under_age"}
        # Sent by hand: a Secure cookie (the shop run as documented) is not sent back over http.
        cookie = answered.headers["set-cookie"].split(";", 1)[0]
        refused = browser.post("/checkout", data={"product": "kite"}, headers={"cookie": cookie})
        assert refused.status_code == 403
    assert websocket_close_code(port, cookie) == 1008
    assert websocket_close_code(port, None) == 1008


def uvicorn_command(port: int, options: list[str]) -> list[str]:
    app = "examples.starlette_app:app"
    return [sys.executable, "-m", "uvicorn", app, "--host", SERVER, "--port", str(port), *options]


@pytest.mark.parametrize(("options", "logged"), [(DOCUMENTED, False), ([], True)])
def test_uvicorn_run_as_documented_logs_no_refused_visitors_address(
    tmp_path: Path, options: list[str], logged: bool
) -> None:
    port = free_port()
    with serving(uvicorn_command(port, options), port, tmp_path) as output:
        refuse_a_child(port)
    logs = "".join(output)
    assert (VISITOR in logs) is logged, logs  # the default run: the check can see an address
    if logged:
        assert "WebSocket /checkout" in logs and "POST /checkout" in logs


def test_agegate_demo_logs_no_refused_visitors_address(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "agegate",
        "demo",
        "--host",
        SERVER,
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
    ]
    with serving(command, port, tmp_path) as output:
        refuse_a_child(port)
    logs = "".join(output)
    assert f"open http://{SERVER}:{port}/" in logs  # the output was captured
    assert VISITOR not in logs, logs


def test_the_readme_runs_uvicorn_the_tested_way() -> None:
    readme = (CHECKOUT / "docs" / "integration.md").read_text(encoding="utf-8")
    assert "uvicorn examples.starlette_app:app --no-access-log --log-level warning" in readme
    for example in ("starlette_app.py", "fastapi_app.py"):
        source = (CHECKOUT / "examples" / example).read_text(encoding="utf-8")
        assert "--no-access-log --log-level warning" in source
        assert 'access_log=False, log_level="warning"' in source
