"""What AgeGateMiddleware costs per request, against a bare Starlette app in the same run.

Calls the ASGI stack directly (no server, no network) in interleaved rounds: each round measures
every case right after its bare counterpart, and the ratios reported are the medians of those
paired ratios, so a busy machine slows both sides alike. Prints µs/request, ratios and PASS/FAIL
per target; exits 1 on a miss. Takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, Keyring
from agegate.asgi.cookie import cookie_name

BODY = b"product=kite&quantity=1"


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("ok")


def starlette(*middleware: Middleware) -> Starlette:
    return Starlette(
        routes=[Route("/checkout", endpoint, methods=["GET", "POST"])], middleware=list(middleware)
    )


def scope_for(method: str, cookie: str | None) -> dict[str, Any]:
    headers = [
        (b"host", b"shop.example"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"application/json"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": "/checkout",
        "raw_path": b"/checkout",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("shop.example", 443),
        "client": ("127.0.0.1", 50000),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


class NoOp:
    """The cheapest possible pure ASGI middleware: the floor of any middleware's cost."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class FirstSeen:
    """The middleware as it meets every cookie for the first time: its memory of opened tokens
    is emptied before each request, so each one decrypts and checks the sealed token."""

    def __init__(self, middleware: AgeGateMiddleware) -> None:
        self.middleware = middleware

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.middleware._cookie.forget()
        await self.middleware(scope, receive, send)


Case = tuple[Any, dict[str, Any], int]


async def run_batch(app: Any, template: dict[str, Any], expect: int, n: int) -> float:
    """Seconds per request over ``n`` requests."""
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        for _ in range(n):
            await app(dict(template), receive, send)
        elapsed = time.thread_time() - start
    finally:
        gc.enable()
    if status != expect:
        raise SystemExit(f"bench: expected {expect}, got {status}: the setup is wrong")
    return elapsed / n


async def main(rounds: int, n: int) -> int:
    # The embedded default store, so the cached subject case pays for the cross-process change
    # signal (a read of the store's shared revision counter) like a real deployment.
    with tempfile.TemporaryDirectory() as folder:
        gate = AgeGate(keys=Keyring.generate("bench"), store=f"sqlite:///{folder}/bench.sqlite3")
        async with gate:
            return await measure(gate, rounds, n)


async def measure(gate: AgeGate, rounds: int, n: int) -> int:
    await gate.record("acct-1", "allowed")
    now = int(time.time())
    seal = gate.sealer.seal
    name = cookie_name(gate.keys)
    allowed = f"{name}={seal('allowed', gate.policy.name, issued_at=now, expires_at=now + 3600)}"
    under = f"{name}={seal('under_age', gate.policy.name, issued_at=now, expires_at=now + 3600)}"

    def subject(scope: Any) -> str | None:
        return "acct-1"

    bare = starlette()
    gated = starlette(Middleware(AgeGateMiddleware, gate=gate))
    with_subject = starlette(Middleware(AgeGateMiddleware, gate=gate, subject=subject))
    assert await gate.cached_status("acct-1") == "allowed"  # warm the cache, as a live server is

    session_secret = "bench-secret"
    from itsdangerous import TimestampSigner
    from starlette.middleware.sessions import SessionMiddleware

    session_value = TimestampSigner(session_secret).sign(b64encode(b'{"user": "acct-1"}')).decode()
    sessions = starlette(Middleware(SessionMiddleware, secret_key=session_secret))

    # The same middleware around the same app as ``gated``, wrapped from outside to reach it.
    first_seen = FirstSeen(AgeGateMiddleware(starlette(), gate=gate))

    cases: dict[str, tuple[Case, Case]] = {
        # name: (the case, its bare counterpart)
        "allowed POST": ((gated, scope_for("POST", allowed), 200), (bare, scope_for("POST", allowed), 200)),
        "allowed POST, first-seen cookie": (
            (first_seen, scope_for("POST", allowed), 200),
            (bare, scope_for("POST", allowed), 200),
        ),
        "GET": ((gated, scope_for("GET", allowed), 200), (bare, scope_for("GET", allowed), 200)),
        "blocked POST": ((gated, scope_for("POST", under), 403), (bare, scope_for("POST", under), 200)),
        "cached subject POST": (
            (with_subject, scope_for("POST", allowed), 200),
            (gated, scope_for("POST", allowed), 200),
        ),
        "no-op middleware GET (reference)": (
            (starlette(Middleware(NoOp)), scope_for("GET", allowed), 200),
            (bare, scope_for("GET", allowed), 200),
        ),
        "SessionMiddleware POST (reference)": (
            (sessions, scope_for("POST", f"session={session_value}"), 200),
            (bare, scope_for("POST", f"session={session_value}"), 200),
        ),
    }
    for (app, template, expect), (base, base_template, base_expect) in cases.values():  # warm up
        await run_batch(app, template, expect, n)
        await run_batch(base, base_template, base_expect, n)

    times: dict[str, list[float]] = {name: [] for name in cases}
    bases: dict[str, list[float]] = {name: [] for name in cases}
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    deltas: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            (app, template, expect), (base, base_template, base_expect) = cases[name]
            # Alternate which side goes first, so neither always gets the warmer cache.
            if round_no % 2:
                t = await run_batch(app, template, expect, n)
                b = await run_batch(base, base_template, base_expect, n)
            else:
                b = await run_batch(base, base_template, base_expect, n)
                t = await run_batch(app, template, expect, n)
            times[name].append(t)
            bases[name].append(b)
            ratios[name].append(t / b)
            deltas[name].append(t - b)

    targets: dict[str, tuple[str, Callable[[str], float], float]] = {
        "allowed POST": ("ratio", lambda k: statistics.median(ratios[k]), 1.5),
        "GET": ("ratio", lambda k: statistics.median(ratios[k]), 1.05),
        "blocked POST": ("ratio", lambda k: statistics.median(ratios[k]), 1.0),
        "cached subject POST": ("adds µs", lambda k: statistics.median(deltas[k]) * 1e6, 2.0),
    }
    print(f"{rounds} interleaved rounds of {n} requests per case; medians of paired measurements")
    print(f"{'case':38} {'µs/req':>8} {'bare':>8} {'ratio':>7}  target")
    failed = False
    for name in names:
        us = statistics.median(times[name]) * 1e6
        base_us = statistics.median(bases[name]) * 1e6
        ratio = statistics.median(ratios[name])
        line = f"{name:38} {us:8.2f} {base_us:8.2f} {ratio:6.3f}x"
        if name in targets:
            kind, measure, limit = targets[name]
            value = measure(name)
            ok = value <= limit
            failed |= not ok
            shown = f"{value:.3f}x" if kind == "ratio" else f"+{value:.2f} µs"
            line += f"  {'PASS' if ok else 'FAIL'}: {shown} <= {limit}{'x' if kind == 'ratio' else ' µs'}"
        else:
            line += "  (no target)" if "first-seen" in name else "  (reference)"
        print(line)
    print("(the cached subject case is compared with the allowed POST through the same middleware;")
    print(" a first-seen cookie is opened once per browser, then remembered until it expires)")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=2000, help="requests per case per round")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.requests)))
