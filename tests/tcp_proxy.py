"""A TCP forwarder on 127.0.0.1 that a test can cut and restore, to play a database outage.

It runs its own event loop on a thread of its own, so that it keeps working whatever the test's
loop is doing. :meth:`TCPProxy.cut` closes every forwarded connection and then either refuses
new ones (the server is down) or accepts them and never answers (a hung server);
:meth:`TCPProxy.freeze` keeps every connection open but drops what crosses it (a network that
silently drops packets); :meth:`TCPProxy.restore` forwards again. Connections accepted while hung
stay hung: only the client's own timeouts get it out of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["forward", "refuse", "hang"]


class TCPProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = "forward"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.Transport] = set()  # both ends of every forwarded connection
        self._held: set[asyncio.StreamWriter] = set()  # connections accepted while hung

    def __enter__(self) -> TCPProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self, *, hang: bool) -> None:
        """Close every connection; from now on hang new ones (``hang``) or refuse them."""
        self._call(self._cut("hang" if hang else "refuse"))

    def freeze(self) -> None:
        """Keep every connection open but drop what crosses it, and hang new ones: a server
        that stopped answering, or a network that silently drops packets."""
        self._call(self._set("hang"))

    def restore(self) -> None:
        """Forward new connections again."""
        self._call(self._set("forward"))

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _set(self, mode: Mode) -> None:
        self.mode = mode

    async def _cut(self, mode: Mode) -> None:
        self.mode = mode
        for transport in list(self._live):
            transport.abort()  # a reset, as when the server's host goes away
        self._live.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut("refuse")
        for writer in list(self._held):
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        if self.mode == "hang":
            self._held.add(writer)
            with contextlib.suppress(OSError):
                while await reader.read(65536):  # swallowed: nothing ever comes back
                    pass
            self._held.discard(writer)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        ends = {writer.transport, up_writer.transport}
        self._live |= ends  # type: ignore[arg-type]
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._live -= ends  # type: ignore[arg-type]
            for end in ends:
                end.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.mode == "forward":  # frozen: swallowed
                    writer.write(data)
                    await writer.drain()
        writer.transport.abort()
