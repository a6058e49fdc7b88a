"""The built-in purge handler for per-account files: :class:`AccountFiles`."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigurationError, InvalidInput

__all__ = ["AccountFiles"]


class AccountFiles:
    """A purge handler deleting an account's files (or directories) under ``root``.

    ``names`` are templates of paths relative to ``root`` with ``{subject}`` standing for the
    account id, e.g. ``("{subject}", "avatars/{subject}.png")``. The account id must be usable
    as a single path component (no separators, not ``.`` or ``..``), every path must stay inside
    ``root``, and symbolic links are removed, never followed. Returns the number of files removed.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, names: Iterable[str] = ("{subject}",), name: str = "files"
    ) -> None:
        self.root = Path(root)
        self.names = tuple(names)
        if not self.names:
            raise ConfigurationError("AccountFiles needs at least one name template")
        for template in self.names:
            if "{subject}" not in template or Path(template).is_absolute() or ".." in Path(template).parts:
                raise ConfigurationError(
                    f"file name template {template!r} must be relative, stay inside the root and "
                    "contain {subject}"
                )
        self.name = name

    def _paths(self, subject: str) -> list[Path]:
        if (
            subject in (".", "..")
            or "/" in subject
            or "\\" in subject
            or "\x00" in subject
            or os.sep in subject
            or (os.altsep is not None and os.altsep in subject)
        ):
            raise InvalidInput("this account id cannot name a file: it contains a path separator")
        root = self.root.resolve()
        out = []
        for template in self.names:
            path = root / template.replace("{subject}", subject)
            # resolve() the parent only: the last component may be a link we must remove, not follow.
            parent = path.parent.resolve()
            if not parent.is_relative_to(root):
                raise InvalidInput("an account file path would leave the files root")
            out.append(parent / path.name)
        return out

    @staticmethod
    def _files_in(path: Path) -> int:
        if path.is_symlink() or path.is_file():
            return 1
        if path.is_dir():
            return sum(
                len(files) + sum(1 for d in dirs if (Path(top) / d).is_symlink())
                for top, dirs, files in os.walk(path)
            )
        return 0

    def _delete(self, subject: str) -> int:
        removed = 0
        for path in self._paths(subject):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
            elif path.is_dir():
                removed += self._files_in(path)
                shutil.rmtree(path)
        return removed

    def _count(self, subject: str) -> int:
        return sum(self._files_in(path) for path in self._paths(subject))

    async def __call__(self, subject: str) -> int:
        return await asyncio.to_thread(self._delete, subject)

    async def count(self, subject: str) -> int:
        """How many files a purge would delete."""
        return await asyncio.to_thread(self._count, subject)

    def __repr__(self) -> str:
        return f"AccountFiles({str(self.root)!r}, names={self.names!r}, name={self.name!r})"
