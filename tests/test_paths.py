"""Every reading of a path: a path the app's router, a proxy or the gate could read differently
only ever makes the gate stricter (issue 8, item 1).

The oracle here is independent of agegate's own code: it reads paths the ways an app may
(Starlette's router on the decoded path, a proxy that resolves dot segments with ``posixpath``,
one that drops ``;parameters`` or takes ``\\`` for ``/``, and the path as sent), and matches
patterns with ``fnmatch``.
"""

from __future__ import annotations

import fnmatch
import posixpath
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_asgi import http_scope, send_through
from servers import uvicorn_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, Keyring
from agegate.asgi.cookie import cookie_name
from agegate.stores import MemoryStore

KEYS = Keyring.generate("paths")
COOKIE = cookie_name(KEYS, secure=False)  # secure_cookies=False below: plain http through uvicorn


def _normpath(path: str) -> str:
    resolved = posixpath.normpath(path)
    return "/" + resolved.lstrip("/") if resolved != "." else "/"


def interpretations(raw: str) -> set[str]:
    """The paths an app, its router or a proxy may take a request for ``raw`` (as sent) to be."""
    decoded = unquote(raw)
    found = {raw, decoded}
    for path in (raw, decoded):
        found.add(_normpath(path))
        no_params = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
        found.update((no_params, _normpath(no_params)))
        found.update((path.replace("\\", "/"), _normpath(path.replace("\\", "/"))))
    return found


def matches(pattern: str, path: str) -> bool:
    """``*`` is anything; ``/x/*`` covers ``/x``; a pattern covers its path plus one ``/``."""
    for candidate in (path, path[:-1]) if path.endswith("/") else (path,):
        if (pattern.endswith("/*") and candidate == pattern[:-2]) or fnmatch.fnmatchcase(candidate, pattern):
            return True
    return False


def gated(readings: set[str], protect: list[str] | None, exempt: list[str], signup: list[str]) -> bool:
    """The rule: protected if any reading is, exempt only if every reading is; a signup path
    (under any reading) is screened whatever ``protect`` and ``exempt`` say."""
    if any(matches(p, path) for p in signup for path in readings):
        return True
    if protect is not None and not any(matches(p, path) for p in protect for path in readings):
        return False

    def exempt_one(path: str) -> bool:
        return path == "/agegate" or path.startswith("/agegate/") or any(matches(p, path) for p in exempt)

    return not all(exempt_one(path) for path in readings)


SEGMENTS = st.sampled_from(
    [
        "checkout",
        "confirm",
        "signup",
        "api",
        "health",
        "uploads",
        "agegate",
        "",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2E",
        "%2E.",
        "%2e%2E",
        "x;v=1",
        "checkout;a=b",
        "signup;",
        "a%2fb",
        "a\\b",
        "..\\checkout",
        "%5c",
    ]
)
RAW_PATHS = st.builds(
    lambda segs, trailing: "/" + "/".join(segs) + ("/" if trailing else ""),
    st.lists(SEGMENTS, min_size=0, max_size=5),
    st.booleans(),
)
PROTECT = st.sampled_from([None, ["/checkout/*"], ["/checkout/*", "/api/*"], ["/uploads/*"], ["/checkout"]])
EXEMPT = st.sampled_from([[], ["/api/health"], ["/uploads/*"], ["/checkout/help", "/api/*"]])
SIGNUP = st.sampled_from([[], ["/signup"], ["/api/signup"]])


class Recorder:
    def __init__(self) -> None:
        self.called = False
        self.scope: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        self.scope = scope
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


async def call(middleware: Any, method: str, raw: str, cookie: str | None) -> tuple[int, list[Any]]:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    scope = http_scope(
        method,
        unquote(raw),  # what servers put here: percent-decoded, dot segments untouched
        headers,
        raw_path=raw.encode("latin-1"),
        scheme="http",
        server=("127.0.0.1", 8000),
    )
    sent = await send_through(middleware, scope)
    return int(sent[0]["status"]), sent


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


def seal(gate: AgeGate, outcome: str) -> str:
    now = int(time.time())
    return gate.sealer.seal(outcome, gate.policy.name, issued_at=now, expires_at=now + 3600)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=RAW_PATHS, protect=PROTECT, exempt=EXEMPT, signup=SIGNUP)
@pytest.mark.anyio
async def test_no_reading_lets_a_blocked_visitor_through(
    gate: AgeGate, raw: str, protect: list[str] | None, exempt: list[str], signup: list[str]
) -> None:
    app = Recorder()
    middleware = AgeGateMiddleware(
        app, gate=gate, protect=protect, exempt=exempt, signup_paths=signup, secure_cookies=False
    )
    readings = interpretations(raw)
    gated_somewhere = gated(readings, protect, exempt, signup)
    status, _ = await call(middleware, "POST", raw, seal(gate, "under_age"))
    if readings == {"/agegate"}:
        assert status == 200 and not app.called  # the screen itself (sticky: under age again)
    elif gated_somewhere:
        # Some reading of the path is protected and not exempt: a child never reaches the app.
        assert status in (400, 403) and not app.called, (raw, readings)
    else:
        # No reading is gated: the gate stays out of the way.
        assert status == 200 and app.called, (raw, readings)

    # The signup hook runs (no screen result needed) only where every reading is a signup path.
    app = Recorder()
    middleware = AgeGateMiddleware(
        app, gate=gate, protect=protect, exempt=exempt, signup_paths=signup, secure_cookies=False
    )
    status, _ = await call(middleware, "POST", raw, None)
    every_signup = all(any(matches(p, path) for p in signup) for path in readings)
    if app.called and gated_somewhere:
        assert every_signup, (raw, readings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=RAW_PATHS)
@pytest.mark.anyio
async def test_the_screen_answers_only_its_own_path(gate: AgeGate, raw: str) -> None:
    app = Recorder()
    middleware = AgeGateMiddleware(app, gate=gate, protect=None, secure_cookies=False)
    status, _ = await call(middleware, "POST", raw, seal(gate, "under_age"))
    served_by_screen = not app.called and status == 200
    if served_by_screen:
        assert interpretations(raw) == {"/agegate"}, raw
    elif all(path == "/agegate" or path.startswith("/agegate/") for path in interpretations(raw)):
        assert app.called, raw  # under the prefix, under every reading: exempt
    else:
        assert status == 403 and not app.called, raw  # every other path is protected here


# -- real uvicorn, raw sockets: no client tidies the path ----------------------------------------


class Handlers:
    def __init__(self) -> None:
        self.ran: list[str] = []

    async def any(self, request: Request) -> Response:
        self.ran.append(request.url.path)
        return PlainTextResponse("handler ran")


def starlette_app(handlers: Handlers) -> Any:
    methods = ["GET", "POST", "PUT", "DELETE"]
    return Starlette(
        routes=[
            Route("/checkout/{step}", handlers.any, methods=methods),
            Route("/signup", handlers.any, methods=methods),
            Route("/api/health", handlers.any, methods=methods),
            Route("/{path:path}", handlers.any, methods=methods),
        ]
    )


def fastapi_app(handlers: Handlers) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    for path in ("/checkout/{step}", "/signup", "/api/health", "/{path:path}"):
        app.add_api_route(path, handlers.any, methods=["GET", "POST", "PUT", "DELETE"])
    return app


@pytest.fixture(params=["starlette", "fastapi"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[int, Handlers, AgeGate]]:
    handlers = Handlers()
    inner = starlette_app(handlers) if request.param == "starlette" else fastapi_app(handlers)
    gate = AgeGate(keys=KEYS, store=MemoryStore())
    # "/checkout/*" protected, the signup path outside it, a health check exempt.
    app = AgeGateMiddleware(
        inner,
        gate=gate,
        protect=["/checkout/*"],
        exempt=["/api/health"],
        signup_paths=["/signup"],
        secure_cookies=False,
    )
    with uvicorn_thread(app, log_level="warning", access_log=False) as port:
        yield port, handlers, gate


def raw_request(port: int, method: str, target: str, cookie: str | None) -> int:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 0", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {COOKIE}={cookie}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "target",
    [
        "/checkout/confirm",
        "/checkout/..",
        "/checkout/%2e%2e",
        "/checkout/.%2E",
        "/checkout/%2E",
        "/checkout/./",
        "//checkout/confirm",
        "/checkout;x=1/confirm",
        "/uploads/../checkout/confirm",
        "/signup",
        "/uploads/../signup",
        "/signup/.",
    ],
)
def test_dot_segments_over_real_http_are_refused(served: tuple[int, Handlers, AgeGate], target: str) -> None:
    port, handlers, gate = served
    status = raw_request(port, "POST", target, seal(gate, "under_age"))
    assert status in (400, 403) and handlers.ran == [], (target, status, handlers.ran)


@pytest.mark.parametrize(
    "target", ["/uploads/../agegate", "/uploads/%2e%2e/agegate", "/uploads/../api/health"]
)
def test_paths_that_resolve_to_the_screen_or_an_exempt_path_stay_gated_where_the_app_routes_them(
    target: str,
) -> None:
    """With ``protect=None`` (everything), a ``{path:path}`` route reached through dot segments
    is protected even though the resolved path is the screen's or exempt."""
    handlers = Handlers()
    gate = AgeGate(keys=KEYS, store=MemoryStore())
    app = AgeGateMiddleware(starlette_app(handlers), gate=gate, exempt=["/api/health"], secure_cookies=False)
    with uvicorn_thread(app, log_level="warning", access_log=False) as port:
        assert raw_request(port, "PUT", target, seal(gate, "under_age")) == 403
        assert handlers.ran == []
        # The plain exempt path still works, for the same visitor.
        assert raw_request(port, "PUT", "/api/health", seal(gate, "under_age")) == 200
        assert handlers.ran == ["/api/health"]


def test_a_plain_allowed_request_still_passes(served: tuple[int, Handlers, AgeGate]) -> None:
    port, handlers, gate = served
    assert raw_request(port, "POST", "/checkout/confirm", seal(gate, "allowed")) == 200
    assert handlers.ran == ["/checkout/confirm"]


@pytest.mark.parametrize("app_kind", ["starlette", "fastapi"])
def test_a_root_path_counts_only_up_to_a_slash(app_kind: str) -> None:
    """uvicorn puts ``root_path + target`` in ``path``; h11 takes a target without a leading
    slash, so ``POST ip/order`` under ``--root-path /v`` is ``/vip/order`` to the router."""
    handlers = Handlers()
    inner = starlette_app(handlers) if app_kind == "starlette" else fastapi_app(handlers)
    gate = AgeGate(keys=KEYS, store=MemoryStore())
    app = AgeGateMiddleware(inner, gate=gate, protect=["/vip/*", "/checkout/*"], secure_cookies=False)
    with uvicorn_thread(app, log_level="warning", access_log=False, root_path="/v") as port:
        for target in ("/vip/order", "ip/order"):
            assert raw_request(port, "POST", target, seal(gate, "under_age")) == 403, target
    assert handlers.ran == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raw", "exempt"),
    [
        ("/webhooks/stripe/", "/webhooks/stripe"),  # a route declared with a trailing slash
        ("/caf%C3%A9/hook", "/café/hook"),  # a client escapes what is not ASCII
        ("/hooks/a%3Ab", "/hooks/a:b"),  # or a reserved character that splits nothing
    ],
)
async def test_exact_exempt_patterns_still_cover_their_routes(gate: AgeGate, raw: str, exempt: str) -> None:
    app = Recorder()
    middleware = AgeGateMiddleware(
        app, gate=gate, exempt=[exempt], signup_paths=[exempt], secure_cookies=False
    )
    status, _ = await call(middleware, "POST", raw, None)
    # A signup path too, so the request goes on to the app's signup hook rather than a 428.
    assert status == 200 and app.called
    app = Recorder()
    middleware = AgeGateMiddleware(app, gate=gate, exempt=[exempt], secure_cookies=False)
    status, _ = await call(middleware, "POST", raw, None)
    assert status == 200 and app.called


def test_many_stars_match_a_long_path_without_backtracking() -> None:
    """A pattern of several ``*`` as one regular expression backtracks without bound (seconds
    to hours on a 4 KiB path, which any visitor can send); the guard only stops a hang."""
    import signal

    from agegate.asgi.paths import Patterns

    def hung(signum: int, frame: Any) -> None:
        raise AssertionError("matching hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        patterns = Patterns("exempt", ["/*/*/*/x", "/*a*a*a*a*b", "/tenants/*/hooks/*/ping"])
        assert not patterns.match("/" + "a/" * 2000)
        assert not patterns.match("/" + "a" * 16000)
        assert patterns.match("/" + "a/" * 2000 + "x")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


PIECES = st.sampled_from(["/", "a", "b", "ab", "/a", "x/", "*", "**", "."])


@given(
    pattern=st.lists(PIECES, min_size=1, max_size=6).map(lambda p: "/" + "".join(p)),
    path=st.lists(st.sampled_from(["/", "a", "b", "x", "."]), max_size=12).map(lambda p: "/" + "".join(p)),
)
def test_patterns_match_as_globs(pattern: str, path: str) -> None:
    from agegate.asgi.paths import Patterns

    assert Patterns("protect", [pattern]).match(path) == matches(pattern, path), (pattern, path)
