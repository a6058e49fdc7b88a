"""What the gate costs before the first request: import time and a server's memory at start.

Import time: ``import agegate`` against ``import starlette.applications``, each in a fresh
interpreter (bytecode compiled beforehand, as an installed package has it), CPU time of the
import alone, in interleaved pairs; the ratio is the median of the paired ratios.

Memory: uvicorn serving the bare app and the gated app (the middleware and a signup route with
the signup hook, on a SQLite store), each read from ``/proc`` once it has answered its first
request. The figure with a target is the server's private memory (``RssAnon``): what each
worker costs. ``VmRSS`` also counts the pages of shared libraries mapped from disk (OpenSSL in
``cryptography``, some 6 MiB), which every process on the host shares; it is shown for reference.
"""

from __future__ import annotations

import compileall
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_IMPORT = "import time; t = time.process_time(); import {module}; print(time.process_time() - t)"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def import_seconds(module: str) -> float:
    """CPU seconds ``import module`` takes in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT.format(module=module)],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return float(out.stdout.strip())


def import_ratio(rounds: int) -> tuple[float, float, float]:
    """``(median agegate seconds, median starlette seconds, median paired ratio)``."""
    compileall.compile_dir(ROOT / "agegate", quiet=1)
    for module in ("agegate", "starlette.applications"):  # warm the page cache
        import_seconds(module)
    ours, theirs, ratios = [], [], []
    for round_no in range(rounds):
        if round_no % 2:
            a = import_seconds("agegate")
            s = import_seconds("starlette.applications")
        else:
            s = import_seconds("starlette.applications")
            a = import_seconds("agegate")
        ours.append(a)
        theirs.append(s)
        ratios.append(a / s)
    return statistics.median(ours), statistics.median(theirs), statistics.median(ratios)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request(port: int, raw: bytes) -> bytes:
    """Send one HTTP/1.1 request and read the whole response (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post(path: str, cookie: str | None = None) -> bytes:
    extra = f"cookie: {cookie}\r\n" if cookie else ""
    body = "product=kite&quantity=1"
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\naccept: application/json\r\n"
        f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {len(body)}\r\n{extra}\r\n{body}"
    ).encode()


class Server:
    """``uvicorn --factory bench.apps:<factory>`` on 127.0.0.1, one worker, no access log."""

    def __init__(self, factory: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"bench.apps:{factory}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--lifespan",
                "off",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"bench: uvicorn serving {factory} did not start") from None
                time.sleep(0.05)

    def memory(self) -> dict[str, float]:
        """``VmRSS``, ``RssAnon`` and ``RssFile`` in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return {
            key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
            for key in ("VmRSS", "RssAnon", "RssFile")
        }

    def cpu_seconds(self) -> float:
        """CPU time the server's threads have run, in nanoseconds' precision (the first field of
        each ``/proc/<pid>/task/<tid>/schedstat``; ``/proc/<pid>/stat`` counts in clock ticks)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                continue
        return total / 1e9

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def bench_env(folder: str) -> tuple[dict[str, str], str]:
    """The servers' environment (a fresh keyring, a SQLite store in ``folder``) and an allowed
    cookie (``name=token``) the gated servers open."""
    from agegate import AgePolicy, Keyring
    from agegate.asgi.cookie import cookie_name
    from agegate.tokens import Sealer

    keys = Keyring.generate("bench")
    now = int(time.time())
    token = Sealer(keys).seal("allowed", AgePolicy().name, issued_at=now, expires_at=now + 3600)
    env = _env(AGEGATE_SECRET_KEYS=keys.to_string(), AGEGATE_BENCH_STORE=f"sqlite:///{folder}/bench.sqlite3")
    return env, f"{cookie_name(keys)}={token}"


def server_memory(rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median memory of the bare and the gated server, each after its first request."""
    with tempfile.TemporaryDirectory() as folder:
        env, cookie = bench_env(folder)
        found: dict[str, list[dict[str, float]]] = {"bare": [], "gated_signup": []}
        for _ in range(rounds):
            for factory in found:
                server = Server(factory, env)
                try:
                    answer = request(server.port, post("/checkout", cookie))
                    if not answer.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"bench: {factory} answered {answer[:40]!r}: the setup is wrong")
                    found[factory].append(server.memory())
                finally:
                    server.stop()
    bare, gated = (
        {key: statistics.median(m[key] for m in runs) for key in runs[0]} for runs in found.values()
    )
    return bare, gated


def main(rounds: int) -> list[tuple[str, str, float, float, str]]:  # bench.rows.Row
    """Rows for ``bench/run``: (case, shown value, value, limit, unit)."""
    ours, theirs, ratio = import_ratio(rounds)
    bare, gated = server_memory(3)
    added = {key: gated[key] - bare[key] for key in bare}
    print(f"import agegate {ours * 1e3:.1f} ms CPU, import starlette.applications {theirs * 1e3:.1f} ms")
    print(
        "server at start, bare -> gated (MiB): "
        + ", ".join(f"{key} {bare[key]:.1f} -> {gated[key]:.1f} (+{added[key]:.1f})" for key in bare)
    )
    return [
        ("import agegate vs starlette.applications", f"{ratio:.3f}x", ratio, 1.2, "x"),
        (
            "server private memory at start (RssAnon)",
            f"+{added['RssAnon']:.1f} MiB",
            added["RssAnon"],
            5.0,
            " MiB",
        ),
    ]


if __name__ == "__main__":
    sys.path[0] = str(ROOT)
    from bench.rows import print_rows

    sys.exit(0 if print_rows(main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)) else 1)
