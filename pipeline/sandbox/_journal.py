"""Append-only journal that makes every acknowledged write survive a SIGKILL.

One JSON line per committed request (``{"n": id_counter, "ops": [...]}``), written with a single
``os.write`` before the answer leaves, so a killed process loses at most a line that was never
acknowledged (a torn last line is ignored on load). The file is compacted into a snapshot on load
and on clean shutdown, so its size follows the state, not the history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Journal"]


class Journal:
    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._fd: int | None = None

    def load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines: list[dict[str, Any]] = []
        with self.path.open("rb") as handle:
            for raw in handle:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    # Only the last line can be torn (killed mid-write); it was never acknowledged.
                    break
                if isinstance(entry, dict):
                    lines.append(entry)
        return lines

    def rewrite(self, entries: Iterable[dict[str, Any]]) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        # Created 0600 (it holds the site's content), not with the umask's 0644: opened by
        # os.open with a mode, so the file is never readable by others, not even briefly.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing .tmp keeps its old mode through O_CREAT
        with os.fdopen(descriptor, "wb") as handle:
            for entry in entries:
                handle.write(_encode(entry))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        data = _encode(entry)
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, data[written:])
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encode(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
