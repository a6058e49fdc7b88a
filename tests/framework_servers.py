"""The per-framework example shops as real server processes (uvicorn, gunicorn), for the shared
HTTP scenario suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agegate import Keyring

ROOT = Path(__file__).resolve().parents[1]
MANAGE = str(ROOT / "examples" / "django_shop" / "manage.py")

#: name -> (server, app target, the gate as MODULE:ATTR for `agegate purge`, or None for Django)
_SHOPS = "examples.frameworks"
STACKS: dict[str, tuple[str, str, str | None]] = {
    **{
        name: ("uvicorn", f"{_SHOPS}.{name}_shop:app", f"{_SHOPS}.{name}_shop:gate")
        for name in ("starlette", "fastapi", "litestar", "quart")
    },
    "django-wsgi": ("gunicorn", "examples.django_shop.wsgi", None),
    "django-asgi": ("uvicorn", "examples.django_shop.asgi:application", None),
}


@dataclass
class Shop:
    """A running shop: its base URL, environment and files."""

    name: str
    url: str
    env: dict[str, str]
    data: Path
    keys: Keyring
    process: subprocess.Popen[bytes]

    @property
    def wal(self) -> Path:
        """The gate store's write-ahead log: there while the store is open, gone once closed."""
        return self.data / "agegate.sqlite3-wal"

    def purge(self, account: str) -> subprocess.CompletedProcess[str]:
        """Purge ``account`` as support staff would: `agegate purge` (`manage.py agegate purge`)."""
        words = ["purge", "--subject", account, "--ticket", "T-1", "--operator", "qa", "--yes"]
        gate = STACKS[self.name][2]
        command = (
            [sys.executable, MANAGE, "agegate", *words]
            if gate is None
            else [sys.executable, "-m", "agegate", *words, "--app", gate]
        )
        return subprocess.run(command, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    def stop(self) -> int:
        """Stop the server as a process manager does (SIGTERM); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shop_env(data: Path, keys: Keyring) -> dict[str, str]:
    """The environment of a shop keeping its files in ``data``."""
    return {
        **os.environ,
        "AGEGATE_SECRET_KEYS": keys.to_string(),
        "AGEGATE_STORE": f"sqlite:///{data / 'agegate.sqlite3'}",
        "SHOP_DB": str(data / "shop.sqlite3"),
        "SHOP_SESSION_SECRET": "5e" * 32,
        "SHOP_DEV": "1",
        "PYTHONPATH": str(ROOT),
        "AGEGATE_APP": "",
    }


@contextmanager
def running(name: str, data: Path) -> Iterator[Shop]:
    """Serve the ``name`` shop from a fresh ``data`` folder until the block ends."""
    server, target, _ = STACKS[name]
    keys = Keyring.generate("fw")
    env = shop_env(data, keys)
    if name.startswith("django"):
        subprocess.run([sys.executable, MANAGE, "migrate", "-v0"], env=env, cwd=ROOT, check=True, timeout=60)
    port = _free_port()
    if server == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", target, "-b", f"127.0.0.1:{port}", "-w", "1"]
    else:
        # Django refuses lifespan: "auto" lets uvicorn go on without it, as users run it.
        lifespan = "auto" if name.startswith("django") else "on"
        command = [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--lifespan", lifespan]
        command += ["--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    shop = Shop(name, f"http://127.0.0.1:{port}", env, data, keys, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{name} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{name} did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield shop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
