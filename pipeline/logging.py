"""Where a run reports to: the :class:`ProgressSink` Protocol, its two sinks, and redaction.

* :class:`RichProgressSink` draws one live line per collection (done/total, items per minute,
  ETA, retries and 429s) when stdout is a terminal.
* :class:`JsonLinesSink` writes one JSON object per event, each with a UTC timestamp ``ts`` and an
  ``event`` name, for cron and log collectors. The CLI points it at **stdout**, so the event
  stream is one ordered stream that a ``>> run.log`` captures whole; human-facing errors from the
  CLI itself (a bad job file, a held lock) go to stderr. ``progress`` events are throttled (at most
  one per collection per ``progress_interval`` seconds, plus a final one); every other event is
  written as it happens.

Redaction: :func:`register_secret` adds a value (a token, a database password) that must never be
shown; every string passing through a sink, the checkpoint log's error texts, and stdlib log
records handled by :class:`RedactingFilter` have it replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Final, Protocol, runtime_checkable
from urllib.parse import quote, quote_plus

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = [
    "LEVELS",
    "JsonLinesSink",
    "NullSink",
    "PrefixedSink",
    "ProgressSink",
    "RedactingFilter",
    "RichProgressSink",
    "clear_secrets",
    "redact",
    "redact_value",
    "register_secret",
]

LEVELS: Final = ("debug", "info", "warning", "error")

#: Values this short would mangle ordinary text if replaced; nothing real is that short.
MIN_SECRET_LENGTH: Final = 4
MASK: Final = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_ordered: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Never show ``value`` again, nor its URL-encoded forms (as it appears inside a DSN)."""
    global _ordered
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.update({value, quote(value, safe=""), quote_plus(value, safe="")})
        # Longest first, so a secret containing another is masked whole.
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def clear_secrets() -> None:
    global _ordered
    with _secrets_lock:
        _secrets.clear()
        _ordered = ()


def redact(text: str) -> str:
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A stdlib logging filter that masks registered secrets in every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _ordered:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


@runtime_checkable
class ProgressSink(Protocol):
    """What the runner reports to. Calls come from the event loop and must return at once."""

    def collection_started(self, collection: str, total: int | None) -> None: ...

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None: ...

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None: ...

    def message(self, level: str, text: str, **fields: Any) -> None: ...

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None: ...


class NullSink:
    """Reports nowhere; for library use and tests that do not look at progress."""

    def collection_started(self, collection: str, total: int | None) -> None:
        return None

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        return None

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        return None

    def message(self, level: str, text: str, **fields: Any) -> None:
        return None

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        return None


@dataclass
class _Tally:
    total: int | None = None
    done: int = 0
    failed: int = 0
    unchanged: int = 0
    retries: int = 0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)
    last_emitted: float = 0.0
    dirty: bool = False

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.unchanged

    def per_minute(self, now: float) -> float:
        elapsed = now - self.started
        return self.processed * 60.0 / elapsed if elapsed > 0 else 0.0


def _level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


class JsonLinesSink:
    """One JSON object per line. ``quiet`` keeps warnings, errors and per-collection totals."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        quiet: bool = False,
        progress_interval: float = 5.0,
        clock: Any = time.monotonic,
        job: str | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        #: Named in every event when several jobs share the stream (``flowport run A B``).
        self._job = job
        self._quiet = quiet
        self._interval = progress_interval
        self._clock = clock
        self._tallies: dict[str, _Tally] = {}

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        if self._job is not None:
            record["job"] = self._job
        record.update(redact_value(fields))
        self._stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self._stream.flush()

    def _tally(self, collection: str) -> _Tally:
        tally = self._tallies.get(collection)
        if tally is None:
            tally = self._tallies[collection] = _Tally(started=self._clock())
        return tally

    def _progress(self, collection: str, tally: _Tally, now: float) -> None:
        tally.last_emitted = now
        tally.dirty = False
        if self._quiet:
            return
        self.emit(
            "progress",
            collection=collection,
            total=tally.total,
            done=tally.done,
            failed=tally.failed,
            unchanged=tally.unchanged,
            retries=tally.retries,
            rate_limited=tally.rate_limited,
            items_per_minute=round(tally.per_minute(now), 1),
        )

    def collection_started(self, collection: str, total: int | None) -> None:
        tally = self._tallies[collection] = _Tally(total=total, started=self._clock())
        tally.last_emitted = tally.started
        if not self._quiet:
            self.emit("collection_started", collection=collection, total=total)

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        tally = self._tally(collection)
        tally.done += done
        tally.failed += failed
        tally.unchanged += unchanged
        tally.dirty = True
        now = self._clock()
        if now - tally.last_emitted >= self._interval:
            self._progress(collection, tally, now)

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        tally = self._tally(collection)
        tally.retries += 1
        tally.rate_limited += int(rate_limited)
        if not self._quiet:
            self.emit("retried", collection=collection, status=status, rate_limited=rate_limited)

    def message(self, level: str, text: str, **fields: Any) -> None:
        if self._quiet and _level_rank(level) < _level_rank("warning"):
            return
        self.emit("message", level=level, text=text, **fields)

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        tally = self._tally(collection)
        now = self._clock()
        if tally.dirty:
            self._progress(collection, tally, now)
        self.emit(
            "collection_finished",
            collection=collection,
            counts=dict(counts),
            retries=tally.retries,
            rate_limited=tally.rate_limited,
            seconds=round(now - tally.started, 3),
        )


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed * 60.0 / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f}/min", style="progress.data.speed")


class _RetriesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        retries = int(task.fields.get("retries", 0))
        limited = int(task.fields.get("rate_limited", 0))
        failed = int(task.fields.get("failed", 0))
        parts = []
        if failed:
            parts.append(f"{failed} failed")
        if retries:
            parts.append(f"{retries} retries ({limited}×429)")
        return Text(", ".join(parts), style="yellow" if parts else "")


class RichProgressSink:
    """A live display, one line per collection. Use as a context manager around the run."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console if console is not None else Console()
        self._quiet = quiet
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            _RetriesColumn(),
            console=self.console,
            transient=False,
            disable=quiet,
        )
        self._tasks: dict[str, TaskID] = {}
        self._tallies: dict[str, _Tally] = {}

    def __enter__(self) -> RichProgressSink:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def _task(self, collection: str) -> TaskID:
        task = self._tasks.get(collection)
        if task is None:
            task = self._tasks[collection] = self._progress.add_task(
                redact(collection), total=None, retries=0, rate_limited=0, failed=0
            )
            self._tallies.setdefault(collection, _Tally())
        return task

    def collection_started(self, collection: str, total: int | None) -> None:
        self._tallies[collection] = _Tally(total=total)
        task = self._task(collection)
        self._progress.reset(task, total=total)
        self._progress.start_task(task)

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        task = self._task(collection)
        tally = self._tallies[collection]
        tally.done += done
        tally.failed += failed
        tally.unchanged += unchanged
        self._progress.update(task, advance=done + failed + unchanged, failed=tally.failed)

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        task = self._task(collection)
        tally = self._tallies[collection]
        tally.retries += 1
        tally.rate_limited += int(rate_limited)
        self._progress.update(task, retries=tally.retries, rate_limited=tally.rate_limited)

    def message(self, level: str, text: str, **fields: Any) -> None:
        if self._quiet and _level_rank(level) < _level_rank("warning"):
            return
        style = {"error": "bold red", "warning": "yellow", "debug": "dim"}.get(level, "")
        extra = " ".join(f"{k}={redact_value(v)}" for k, v in fields.items())
        line = Text(redact(text), style=style)
        if extra:
            line.append(f"  {extra}", style="dim")
        self._progress.console.print(line)

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        task = self._task(collection)
        tally = self._tallies[collection]
        self._progress.update(task, total=max(tally.processed, tally.total or 0))
        self._progress.stop_task(task)
        if self._quiet:
            summary = ", ".join(f"{state} {count}" for state, count in counts.items())
            self.console.print(f"{redact(collection)}: {summary}")


class PrefixedSink:
    """Another sink's events with the job's name before each collection and message, so jobs
    run at once (``flowport run A B``) share one live display, one line per job's collection."""

    def __init__(self, inner: ProgressSink, job: str) -> None:
        self._inner = inner
        self._job = job

    def collection_started(self, collection: str, total: int | None) -> None:
        self._inner.collection_started(f"{self._job}: {collection}", total)

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        self._inner.advanced(
            f"{self._job}: {collection}", done=done, failed=failed, unchanged=unchanged
        )

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        self._inner.retried(f"{self._job}: {collection}", status=status, rate_limited=rate_limited)

    def message(self, level: str, text: str, **fields: Any) -> None:
        self._inner.message(level, f"{self._job}: {text}", **fields)

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        self._inner.collection_finished(f"{self._job}: {collection}", counts)
