"""A change counter that every process on one host sees at once.

Eight bytes in a small owner-only file next to the database, mapped into memory. A process that
marks an account under age bumps it; every process compares it with the value it last saw
before answering from its status cache, so a purge blocks the account in every worker at once.
Reading it is a memory read, not a system call. The file holds a number and nothing else.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct

__all__ = ["RevisionFile"]

_COUNTER = struct.Struct("<Q")


class RevisionFile:
    """The counter at ``path``; :meth:`open` before use (it creates the file, mode 0600)."""

    __slots__ = ("_fd", "_map", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        if self._map is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _allocate(fd)
            self._map = mmap.mmap(fd, _COUNTER.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        """Unmap and close the file. Idempotent."""
        mapped, self._map = self._map, None
        fd, self._fd = self._fd, None
        if mapped is not None:
            mapped.close()
        if fd is not None:
            os.close(fd)

    def value(self) -> int:
        """The current count (``0`` while closed)."""
        mapped = self._map
        if mapped is None:
            return 0
        try:
            return int(_COUNTER.unpack_from(mapped)[0])
        except ValueError:  # closed by a concurrent close()
            return 0

    def bump(self) -> None:
        """Add one, under an exclusive lock so that no two processes' bumps merge into one."""
        if self._map is None or self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            _COUNTER.pack_into(self._map, 0, (_COUNTER.unpack_from(self._map)[0] + 1) % 2**64)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _allocate(fd: int) -> None:
    """Give the counter's bytes real storage before they are mapped.

    A mapped page with no storage behind it (a hole left by ``ftruncate``) is allocated on first
    touch; on a full disk or tmpfs that fails with SIGBUS, which kills the process. Writing the
    bytes instead turns a full disk into an ``OSError`` (``ENOSPC``) here. They are written back
    as read, under the lock that :meth:`RevisionFile.bump` takes, so a racing opener never
    resets a count.
    """
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        current = os.pread(fd, _COUNTER.size, 0)
        written = os.pwrite(fd, current.ljust(_COUNTER.size, b"\0"), 0)
        if written != _COUNTER.size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
