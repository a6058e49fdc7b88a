"""Raw ASGI requests, for tests that need the scope exactly as given (no client recomputes the
headers or the path)."""

from __future__ import annotations

from typing import Any

__all__ = ["http_scope", "send_through"]


def http_scope(method: str, path: str, headers: Any = (), **fields: Any) -> dict[str, Any]:
    """An HTTP scope as a server at https://shop.example would build it; ``fields`` replace keys."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": list(headers),
        "server": ("shop.example", 443),
        "client": ("127.0.0.1", 5000),
        **fields,
    }


async def send_through(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    """Run one request with ``body`` through ``app``; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
