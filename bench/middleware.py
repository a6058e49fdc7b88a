"""What AgeGateMiddleware costs per request, against its anchor in the same run.

Calls the ASGI stack directly (no server, no network) in interleaved rounds: each round measures
every case right after its anchor (the bare Starlette app, or for GET the no-op pure-ASGI layer),
and the ratios reported are the medians of those paired ratios, so a busy machine slows both
sides alike. Times are the thread's CPU time (a shared machine's other work is left out). Prints
µs/request, ratios and PASS/FAIL per target; exits 1 on a miss.

First-seen cookies: every request carries a valid cookie the middleware has never seen (every
visitor's first request to each worker). 50k distinct cookies: requests cycle through 50,000
browsers' cookies, more than the middleware remembers, so each one is opened again.

Run from the project's root as ``python -m bench.middleware`` (``bench/run`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from base64 import b64encode, urlsafe_b64decode
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


class Floor:
    """The floor of a first-seen cookie, hand-written: one pure ASGI layer that finds the cookie
    with one ``find``, base64url-decodes it and opens it with one AES-GCM decrypt (no checks, no
    memo, no policy), then calls the app. What no gate that opens a sealed cookie can go below."""

    def __init__(self, app: Any, gate: AgeGate) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.app = app
        self.name = (cookie_name(gate.keys) + "=").encode()
        kid = gate.keys.active_kid.encode()
        self.cipher = AESGCM(gate.keys.purpose_key("cookie", gate.keys.active_kid))
        self.aad = b"agegate/cookie" + bytes((1, len(kid))) + kid
        self.start = 2 + len(kid)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        for key, value in scope["headers"]:
            if key == b"cookie":
                at = value.find(self.name) + len(self.name)
                raw = urlsafe_b64decode(value[at:] + b"==")
                start = self.start
                self.cipher.decrypt(raw[start : start + 12], raw[start + 12 :], self.aad)
        await self.app(scope, receive, send)


Case = tuple[Any, Callable[[], list[dict[str, Any]]], int]  # app, scopes for one batch, status


async def run_batch(app: Any, scopes: list[dict[str, Any]], expect: int) -> float:
    """Seconds per request over one request per scope."""
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        for scope in scopes:
            await app(scope, receive, send)
        elapsed = time.thread_time() - start
    finally:
        gc.enable()
    if status != expect:
        raise SystemExit(f"bench: expected {expect}, got {status}: the setup is wrong")
    return elapsed / len(scopes)


def received(template: dict[str, Any]) -> dict[str, Any]:
    """A request as a server hands it over: a new scope whose headers are new bytes objects,
    just parsed (so in the processor's cache, as a server's are), not ones built long before."""
    scope = dict(template)
    scope["headers"] = [(bytes(bytearray(k)), bytes(bytearray(v))) for k, v in template["headers"]]
    return scope


def copies(template: dict[str, Any], n: int) -> Callable[[], list[dict[str, Any]]]:
    """``n`` fresh copies of one request (the middleware writes into the scope)."""
    return lambda: [received(template) for _ in range(n)]


def cycling(templates: list[dict[str, Any]], n: int) -> Callable[[], list[dict[str, Any]]]:
    """The next ``n`` requests of an endless cycle through ``templates``."""
    position = 0

    def take() -> list[dict[str, Any]]:
        nonlocal position
        batch = [received(templates[(position + i) % len(templates)]) for i in range(n)]
        position += n
        return batch

    return take


def whole_service_case(gate: AgeGate, get: dict[str, Any], bare: Any, n: int) -> dict[str, tuple[Case, Case]]:
    """``mode="all"``: a read with an adult's cookie, which is gated like an allowed POST."""
    gated_reads = starlette(Middleware(AgeGateMiddleware, gate=gate, mode="all"))
    return {'GET, mode="all"': ((gated_reads, copies(get, n), 200), (bare, copies(get, n), 200))}


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

    def sealed(count: int) -> list[dict[str, Any]]:
        """Requests with ``count`` distinct valid cookies (of ``count`` browsers)."""
        return [
            scope_for(
                "POST", f"{name}={seal('allowed', gate.policy.name, issued_at=now, expires_at=now + 3600)}"
            )
            for _ in range(count)
        ]

    # Never a cookie twice in the whole run: warm-up, and every round of both sides.
    fresh = cycling(sealed(2 * n * (rounds + 1)), n)
    browsers = cycling(sealed(50_000), n)
    post, get = scope_for("POST", allowed), scope_for("GET", allowed)
    # What a browser sends: the gate's cookie among a dozen and more of the site's others.
    others = "; ".join(f"_ga_{i}=GS1.1.{i}1700000000.5.1.1700000100.0.0.0" for i in range(15))
    browser = scope_for("POST", f"{others}; {allowed}; session=0123456789abcdef; csrftoken=x1y2z3")
    noop = starlette(Middleware(NoOp))
    cases: dict[str, tuple[Case, Case]] = {
        # name: (the case, its anchor)
        "allowed POST": ((gated, copies(post, n), 200), (bare, copies(post, n), 200)),
        "allowed POST, first-seen cookies": ((gated, fresh, 200), (bare, fresh, 200)),
        "allowed POST, 50k distinct cookies": ((gated, browsers, 200), (bare, browsers, 200)),
        "allowed POST, 18 cookies (reference)": (
            (gated, copies(browser, n), 200),
            (bare, copies(browser, n), 200),
        ),
        "GET (against the no-op layer)": ((gated, copies(get, n), 200), (noop, copies(get, n), 200)),
        "blocked POST": ((gated, copies(scope_for("POST", under), n), 403), (bare, copies(post, n), 200)),
        "cached subject POST": ((with_subject, copies(post, n), 200), (gated, copies(post, n), 200)),
        "no-op middleware GET (reference)": ((noop, copies(get, n), 200), (bare, copies(get, n), 200)),
        "floor: one AES-GCM open (reference)": (
            (starlette(Middleware(Floor, gate=gate)), fresh, 200),
            (bare, fresh, 200),
        ),
        "SessionMiddleware POST (reference)": (
            (sessions, copies(scope_for("POST", f"session={session_value}"), n), 200),
            (bare, copies(post, n), 200),
        ),
    }
    cases.update(whole_service_case(gate, get, bare, n))
    for (app, scopes, expect), (base, base_scopes, base_expect) in cases.values():  # warm up
        await run_batch(app, scopes(), expect)
        await run_batch(base, base_scopes(), base_expect)

    times: dict[str, list[float]] = {name: [] for name in cases}
    bases: dict[str, list[float]] = {name: [] for name in cases}
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    deltas: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_no in range(rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            (app, scopes, expect), (base, base_scopes, base_expect) = cases[name]
            ours, theirs = scopes(), base_scopes()
            # Alternate which side goes first, so neither always gets the warmer cache.
            if round_no % 2:
                t = await run_batch(app, ours, expect)
                b = await run_batch(base, theirs, base_expect)
            else:
                b = await run_batch(base, theirs, base_expect)
                t = await run_batch(app, ours, expect)
            times[name].append(t)
            bases[name].append(b)
            ratios[name].append(t / b)
            deltas[name].append(t - b)

    targets: dict[str, tuple[str, Callable[[str], float], float]] = {
        "allowed POST": ("ratio", lambda k: statistics.median(ratios[k]), 1.5),
        "allowed POST, first-seen cookies": ("ratio", lambda k: statistics.median(ratios[k]), 1.3),
        "allowed POST, 50k distinct cookies": ("ratio", lambda k: statistics.median(ratios[k]), 1.3),
        "GET (against the no-op layer)": ("ratio", lambda k: statistics.median(ratios[k]), 1.05),
        "blocked POST": ("ratio", lambda k: statistics.median(ratios[k]), 1.0),
        "cached subject POST": ("adds µs", lambda k: statistics.median(deltas[k]) * 1e6, 2.0),
        'GET, mode="all"': ("ratio", lambda k: statistics.median(ratios[k]), 1.5),  # as an allowed POST
    }
    print(f"{rounds} interleaved rounds of {n} requests per case; medians of paired measurements")
    print(f"{'case':38} {'µs/req':>8} {'anchor':>8} {'ratio':>7}  target")
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
            line += "  (reference)"
        print(line)
    print("(anchors: the bare app; for GET the no-op pure-ASGI layer in the same rounds; for the cached")
    print(" subject case the allowed POST through the same middleware)")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=2000, help="requests per case per round")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.requests)))
