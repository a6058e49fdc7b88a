"""Real servers for tests: uvicorn in a thread, and a websocket handshake over a raw socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def uvicorn_thread(app: Any, **options: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread (``options`` go to ``uvicorn.Config``);
    yield its port."""
    import uvicorn

    config = uvicorn.Config(app, **{"host": "127.0.0.1", "port": 0, "lifespan": "off", **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def websocket_events(
    sock: socket.socket, host: str, target: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> list[Any]:
    """Open a websocket on the connected ``sock`` and read until the server closes or rejects
    it (answering a close); the wsproto events seen."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import CloseConnection, RejectConnection, Request

    client = WSConnection(ConnectionType.CLIENT)
    events: list[Any] = []
    sock.sendall(client.send(Request(host=host, target=target, extra_headers=list(headers))))
    while not any(isinstance(e, CloseConnection | RejectConnection) for e in events):
        data = sock.recv(4096)
        client.receive_data(data or None)
        events.extend(client.events())
        if not data:
            break
    ends = [e for e in events if isinstance(e, CloseConnection)]
    if ends:
        sock.sendall(client.send(ends[0].response()))
    return events
