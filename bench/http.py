"""The gate over HTTP: uvicorn on 127.0.0.1 serving the bare app, the no-op pure-ASGI layer, the
gate and Starlette's SessionMiddleware, each driven by a load client in a process of its own.

Cases: the bare app; the no-op layer; the gate with a known cookie, with first-seen cookies
(every request a new valid cookie), with 50k distinct cookies (more browsers than a worker
remembers) and with an under-age cookie (blocked); SessionMiddleware with a signed session.
Interleaved over several rounds; each case reports req/s and the server's CPU time per request
(``/proc/<pid>/stat``) as medians of ratios to the bare app in the same round. CPU per request is
the figure to trust on a shared machine. Takes about a minute; not part of CI.

    .venv/bin/python bench/http.py [--rounds 5] [--requests 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where its name would hide the
# standard library's http package: put the project's root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from base64 import b64encode  # noqa: E402

from bench.startup import Server, bench_env  # noqa: E402

#: Connections the load client keeps open at once.
CONNECTIONS = 4
#: The most a client run may take, in seconds.
CLIENT_TIMEOUT = 120


def cookies(kind: str, n: int) -> list[str]:
    """``n`` Cookie header values for a case (in the client process: keys from the environment)."""
    from agegate import AgePolicy, Keyring
    from agegate.asgi.cookie import cookie_name
    from agegate.tokens import Sealer

    if kind in ("bare", "noop"):
        kind = "known"
    if kind == "sessions":
        from itsdangerous import TimestampSigner

        from bench.apps import SESSION_SECRET

        value = TimestampSigner(SESSION_SECRET).sign(b64encode(b'{"user": "acct-1"}')).decode()
        return [f"session={value}"] * n
    keys = Keyring.from_env()
    sealer, name, policy = Sealer(keys), cookie_name(keys), AgePolicy().name
    now = int(time.time())

    def one(outcome: str = "allowed") -> str:
        return f"{name}={sealer.seal(outcome, policy, issued_at=now, expires_at=now + 3600)}"  # type: ignore[arg-type]

    if kind == "known":
        return [one()] * n
    if kind == "blocked":
        return [one("under_age")] * n
    if kind == "first_seen":
        return [one() for _ in range(n)]
    pool = [one() for _ in range(50_000)]  # 50k: every request is one of 50,000 browsers
    start = int.from_bytes(os.urandom(2), "big")
    return [pool[(start + i * 7919) % len(pool)] for i in range(n)]


async def drive(port: int, headers: list[str], expect: bytes) -> float:
    """Send one POST per Cookie header over CONNECTIONS keep-alive connections; seconds taken."""
    body = b"product=kite&quantity=1"
    requests = [
        (
            "POST /checkout HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: application/json\r\n"
            f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {len(body)}\r\n"
            f"cookie: {cookie}\r\n\r\n"
        ).encode()
        + body
        for cookie in headers
    ]

    async def connection(mine: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in mine:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(expect):
                    raise SystemExit(f"bench: expected {expect!r}, got {head[:40]!r}: the setup is wrong")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection(requests[i::CONNECTIONS]) for i in range(CONNECTIONS)))
    return time.perf_counter() - start


def client_main(port: int, kind: str, n: int) -> None:
    """The load client: prepares its requests, waits for the go (a line on stdin), sends them,
    and prints the seconds taken."""
    headers = cookies(kind, n)
    expect = b"HTTP/1.1 403" if kind == "blocked" else b"HTTP/1.1 200"
    print("ready", flush=True)
    sys.stdin.readline()
    print(asyncio.run(drive(port, headers, expect)), flush=True)


def run_case(server: Server, kind: str, n: int, env: dict[str, str]) -> tuple[float, float]:
    """``(requests per second, server CPU seconds per request)`` for one client run."""
    client = subprocess.Popen(
        [sys.executable, __file__, "--client", str(server.port), kind, str(n)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdin is not None
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            raise SystemExit("bench: the load client did not start")
        cpu = server.cpu_seconds()
        client.stdin.write("go\n")
        client.stdin.flush()
        seconds = float(client.stdout.readline())
        used = server.cpu_seconds() - cpu
        client.wait(CLIENT_TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return n / seconds, used / n


CASES = {
    # case: (server factory, client kind)
    "bare app": ("bare", "bare"),
    "no-op pure-ASGI layer": ("noop", "noop"),
    "gate, known cookie": ("gated", "known"),
    "gate, first-seen cookies": ("gated", "first_seen"),
    "gate, 50k distinct cookies": ("gated", "50k"),
    "gate, blocked": ("gated", "blocked"),
    "SessionMiddleware": ("sessions", "sessions"),
}
#: The case with a target: server CPU per request against the bare app's.
TARGET = ("gate, 50k distinct cookies", 1.15)


def main(rounds: int, n: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        env, _ = bench_env(folder)
        servers = {factory: Server(factory, env) for factory in {f for f, _ in CASES.values()}}
        try:
            for factory, kind in CASES.values():  # warm up
                run_case(servers[factory], kind, n // 4, env)
            rates: dict[str, list[float]] = {name: [] for name in CASES}
            cpus: dict[str, list[float]] = {name: [] for name in CASES}
            names = list(CASES)
            for round_no in range(rounds):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                found = {name: run_case(servers[CASES[name][0]], CASES[name][1], n, env) for name in order}
                for name in names:
                    rates[name].append(found[name][0] / found["bare app"][0])
                    cpus[name].append(found[name][1] / found["bare app"][1])
                    if name == "bare app":
                        rates[name][-1], cpus[name][-1] = found[name]
        finally:
            for server in servers.values():
                server.stop()
    bare_rate, bare_cpu = statistics.median(rates["bare app"]), statistics.median(cpus["bare app"])
    print(f"{rounds} interleaved rounds of {n} requests per case over {CONNECTIONS} connections")
    print(f"bare app: {bare_rate:.0f} req/s, {bare_cpu * 1e6:.0f} µs server CPU per request")
    print(f"{'case':30} {'req/s':>8} {'CPU/req':>8}  (ratios to the bare app, medians)")
    failed = False
    for name in names[1:]:
        rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
        line = f"{name:30} {rate:7.3f}x {cpu:7.3f}x"
        if name == TARGET[0]:
            ok = cpu <= TARGET[1]
            failed |= not ok
            line += f"  {'PASS' if ok else 'FAIL'}: CPU/req {cpu:.3f}x <= {TARGET[1]}x"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="requests per case per round")
    args = parser.parse_args()
    sys.exit(main(args.rounds, args.requests))
