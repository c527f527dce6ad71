"""Where a run reports to: the :class:`ProgressSink` Protocol, its sinks, and redaction.

Every sink counts through one :class:`ProgressTally` per collection, the one source of the
numbers a run shows: done/failed/unchanged, the phase (setup, read, write, publish, finish),
requests, and a rate taken from what Webflow acknowledged over the last minute at most, given
only once a few seconds have passed (a collection whose every item failed locally in a
millisecond has no rate, not 1,105,078/min).

* :class:`RichProgressSink` draws one live line per collection (done/total, items written per
  minute, ETA, retries and 429s, the phase) when stdout is a terminal.
* :class:`JsonLinesSink` writes one JSON object per event, each with a UTC timestamp ``ts`` and an
  ``event`` name, for cron and log collectors. The CLI points it at **stdout**, so the event
  stream is one ordered stream that a ``>> run.log`` captures whole; human-facing errors from the
  CLI itself (a bad job file, a held lock) go to stderr. ``progress`` events are throttled (at most
  one per collection per ``progress_interval`` seconds, plus a final one); every other event is
  written as it happens.
* :class:`CallbackSink` calls a function with a :class:`ProgressEvent` at a bounded rate: the
  library's ``flowport.run(job, on_progress=...)``.

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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal, Protocol, runtime_checkable
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
    "RATE_MIN_SECONDS",
    "RATE_WINDOW_SECONDS",
    "CallbackSink",
    "JsonLinesSink",
    "NullSink",
    "Phase",
    "PrefixedSink",
    "ProgressEvent",
    "ProgressSink",
    "ProgressTally",
    "RedactingFilter",
    "RequestCounter",
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


#: Where a collection is: its schema being made (setup), its records read with nothing written
#: yet (read), written (write), its staged items published (publish), done (finish).
Phase = Literal["setup", "read", "write", "publish", "finish"]

#: The requests a run made so far for a collection (the Webflow client's own count).
RequestCounter = Callable[[str], int]

#: A rate is given only once this much time has passed since the collection started: before
#: that, a few items over a few milliseconds say nothing about a run's speed.
RATE_MIN_SECONDS: Final = 5.0
#: The rate covers at most this last stretch of time, so a pause (a 429's wait) shows, and a
#: fast start is forgotten.
RATE_WINDOW_SECONDS: Final = 60.0


@runtime_checkable
class ProgressSink(Protocol):
    """What the runner reports to. Calls come from the event loop and must return at once."""

    def count_requests(self, counter: RequestCounter) -> None:
        """Told once, when the run's Webflow client exists: how to read its request counts."""
        ...

    def collection_started(self, collection: str, total: int | None) -> None: ...

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
        """The collection entered ``phase``; ``done`` of ``total`` are its steps in it (fields
        created, items published), when it has counted ones."""
        ...

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None: ...

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None: ...

    def message(self, level: str, text: str, **fields: Any) -> None: ...

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None: ...


class NullSink:
    """Reports nowhere; for library use and tests that do not look at progress."""

    def count_requests(self, counter: RequestCounter) -> None:
        return None

    def collection_started(self, collection: str, total: int | None) -> None:
        return None

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
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


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One collection's progress, as ``flowport.run(job, on_progress=...)`` is given it."""

    collection: str
    phase: Phase
    #: Records written (created, updated or published items Webflow acknowledged).
    done: int
    failed: int
    unchanged: int
    #: The records expected, when the source (or the last run) says; None when unknown.
    total: int | None
    #: Requests sent for this collection so far (each counted once, retries apart).
    requests: int
    retries: int
    rate_limited: int
    #: Seconds since the collection started.
    seconds: float
    #: Items written per minute over the last minute at most; None in the first
    #: :data:`RATE_MIN_SECONDS` and before anything was written.
    items_per_minute: float | None
    #: In ``setup`` and ``publish``: steps done and steps in all (fields created, items
    #: published); None in other phases.
    steps: tuple[int, int | None] | None = None

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.unchanged


class ProgressTally:
    """One collection's counts, phase and rate: what every sink shows, counted once."""

    def __init__(
        self,
        collection: str,
        total: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        requests: RequestCounter | None = None,
    ) -> None:
        self.collection = collection
        self.total = total
        self.clock = clock
        self.requests = requests
        self.phase: Phase = "read"
        self.steps: tuple[int, int | None] | None = None
        self.done = self.failed = self.unchanged = 0
        self.retries = self.rate_limited = 0
        self.started = clock()
        #: (time, done) at most one a second, over the last RATE_WINDOW_SECONDS.
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        #: When a throttled sink last reported this collection, and whether it changed since.
        self.last_emitted = self.started
        self.dirty = False

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.unchanged

    def advance(self, *, done: int = 0, failed: int = 0, unchanged: int = 0) -> None:
        self.done += done
        self.failed += failed
        self.unchanged += unchanged
        self.dirty = True
        if done and self.phase == "read":
            self.phase = "write"
        now = self.clock()
        if now - self.samples[-1][0] >= 1.0:
            self.samples.append((now, self.done))
        self._forget_before(now - RATE_WINDOW_SECONDS)

    def _forget_before(self, start: float) -> None:
        """Keep one sample at or before ``start`` (the window's base), none older."""
        while len(self.samples) > 1 and self.samples[1][0] <= start:
            self.samples.popleft()

    def enter(self, phase: Phase, *, done: int = 0, total: int | None = None) -> bool:
        """Record the phase and its steps; whether the phase changed."""
        changed = phase != self.phase
        self.phase = phase
        self.steps = (done, total) if phase in ("setup", "publish") else None
        self.dirty = True
        return changed

    def items_per_minute(self, now: float) -> float | None:
        if now - self.started < RATE_MIN_SECONDS or not self.done:
            return None
        self._forget_before(now - RATE_WINDOW_SECONDS)
        since, done_then = self.samples[0]
        elapsed = now - since
        if elapsed <= 0:
            return None
        return (self.done - done_then) * 60.0 / elapsed

    def event(self) -> ProgressEvent:
        now = self.clock()
        rate = self.items_per_minute(now)
        return ProgressEvent(
            collection=self.collection,
            phase=self.phase,
            done=self.done,
            failed=self.failed,
            unchanged=self.unchanged,
            total=self.total,
            requests=self.requests(self.collection) if self.requests is not None else 0,
            retries=self.retries,
            rate_limited=self.rate_limited,
            seconds=round(now - self.started, 3),
            items_per_minute=round(rate, 1) if rate is not None else None,
            steps=self.steps,
        )


class _Tallies:
    """A sink's tallies by collection, all counting the same way."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        #: One per run reporting here: jobs run at once (``flowport run A B``) share a sink
        #: through :class:`PrefixedSink`, whose counters count only their own collections.
        self.counters: list[RequestCounter] = []
        self.by_name: dict[str, ProgressTally] = {}

    def requests(self, collection: str) -> int:
        return sum(counter(collection) for counter in self.counters)

    def start(self, collection: str, total: int | None) -> ProgressTally:
        tally = ProgressTally(collection, total, clock=self.clock, requests=self.requests)
        self.by_name[collection] = tally
        return tally

    def get(self, collection: str) -> ProgressTally:
        tally = self.by_name.get(collection)
        if tally is None:
            tally = self.by_name[collection] = ProgressTally(
                collection, clock=self.clock, requests=self.requests
            )
        return tally

    def count_requests(self, counter: RequestCounter) -> None:
        self.counters.append(counter)


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
        self._tallies = _Tallies(clock)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        if self._job is not None:
            record["job"] = self._job
        record.update(redact_value(fields))
        self._stream.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self._stream.flush()

    def _progress(self, tally: ProgressTally) -> None:
        event = tally.event()
        tally.last_emitted = tally.clock()
        tally.dirty = False
        if self._quiet:
            return
        self.emit(
            "progress",
            collection=event.collection,
            phase=event.phase,
            total=event.total,
            done=event.done,
            failed=event.failed,
            unchanged=event.unchanged,
            requests=event.requests,
            retries=event.retries,
            rate_limited=event.rate_limited,
            items_per_minute=event.items_per_minute,
        )

    def count_requests(self, counter: RequestCounter) -> None:
        self._tallies.count_requests(counter)

    def collection_started(self, collection: str, total: int | None) -> None:
        self._tallies.start(collection, total)
        if not self._quiet:
            self.emit("collection_started", collection=collection, total=total)

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
        # A phase change is news; a step within one is folded into the throttled progress.
        if self._tallies.get(collection).enter(phase, done=done, total=total) and not self._quiet:
            self.emit("phase", collection=collection, phase=phase, total=total)

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        tally = self._tallies.get(collection)
        tally.advance(done=done, failed=failed, unchanged=unchanged)
        if tally.clock() - tally.last_emitted >= self._interval:
            self._progress(tally)

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        tally = self._tallies.get(collection)
        tally.retries += 1
        tally.rate_limited += int(rate_limited)
        if not self._quiet:
            self.emit("retried", collection=collection, status=status, rate_limited=rate_limited)

    def message(self, level: str, text: str, **fields: Any) -> None:
        if self._quiet and _level_rank(level) < _level_rank("warning"):
            return
        self.emit("message", level=level, text=text, **fields)

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        tally = self._tallies.get(collection)
        if tally.dirty:
            self._progress(tally)
        tally.enter("finish")
        self.emit(
            "collection_finished",
            collection=collection,
            counts=dict(counts),
            retries=tally.retries,
            rate_limited=tally.rate_limited,
            requests=tally.event().requests,
            seconds=round(tally.clock() - tally.started, 3),
        )


class CallbackSink:
    """Calls ``callback`` with a :class:`ProgressEvent`: on every phase change, when a phase's
    steps are all done, at most once an ``interval`` seconds per collection in between, and once
    at the end of each collection (phase ``finish``). Messages go to the ``flowport`` logger of
    the standard ``logging`` module."""

    def __init__(
        self,
        callback: Callable[[ProgressEvent], object],
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._interval = interval
        self._tallies = _Tallies(clock)
        self._logger = logging.getLogger("flowport")

    def _report(self, tally: ProgressTally) -> None:
        tally.last_emitted = tally.clock()
        tally.dirty = False
        self._callback(tally.event())

    def count_requests(self, counter: RequestCounter) -> None:
        self._tallies.count_requests(counter)

    def collection_started(self, collection: str, total: int | None) -> None:
        self._report(self._tallies.start(collection, total))

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
        tally = self._tallies.get(collection)
        changed = tally.enter(phase, done=done, total=total)
        if changed or tally.clock() - tally.last_emitted >= self._interval or done == total:
            self._report(tally)

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        tally = self._tallies.get(collection)
        changed = tally.phase == "read" and done > 0
        tally.advance(done=done, failed=failed, unchanged=unchanged)
        if changed or tally.clock() - tally.last_emitted >= self._interval:
            self._report(tally)

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        tally = self._tallies.get(collection)
        tally.retries += 1
        tally.rate_limited += int(rate_limited)

    def message(self, level: str, text: str, **fields: Any) -> None:
        number = logging.getLevelName(level.upper())
        self._logger.log(number if isinstance(number, int) else logging.INFO, redact(text))

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        tally = self._tallies.get(collection)
        tally.enter("finish")
        self._report(tally)


class _RateColumn(ProgressColumn):
    """Items written per minute, from the collection's tally; blank until it has one."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if not isinstance(rate, int | float):
            return Text("")
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


#: What the live display says of a collection in each phase but writing, its main one.
_PHASE_WORDS: Final[Mapping[str, str]] = {
    "setup": "setting up",
    "read": "reading",
    "publish": "publishing",
    "finish": "done",
}


class RichProgressSink:
    """A live display, one line per collection. Use as a context manager around the run."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
        self._tallies = _Tallies(clock)

    def __enter__(self) -> RichProgressSink:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def _task(self, collection: str) -> TaskID:
        task = self._tasks.get(collection)
        if task is None:
            task = self._tasks[collection] = self._progress.add_task(
                redact(collection), total=None, retries=0, rate_limited=0, failed=0, rate=None
            )
        return task

    def _describe(self, tally: ProgressTally) -> str:
        name = redact(tally.collection)
        words = _PHASE_WORDS.get(tally.phase)
        if tally.phase == "setup" and tally.steps is not None and tally.steps[0] == tally.steps[1]:
            words = "set up"  # waiting for its turn: collections are written in order
        return f"{name} ({words})" if words else name

    def count_requests(self, counter: RequestCounter) -> None:
        self._tallies.count_requests(counter)

    def _restart(self, tally: ProgressTally, *, total: int | None, completed: int) -> None:
        """The collection's bar counting afresh: ``completed`` of ``total`` (None: unknown)."""
        task = self._task(tally.collection)
        # Progress.reset and update leave a total of None alone: it is set on the task itself,
        # before the reset draws it.
        for shown in self._progress.tasks:
            if shown.id == task:
                shown.total = total
        self._progress.reset(
            task,
            completed=completed,
            description=self._describe(tally),
            retries=tally.retries,
            rate_limited=tally.rate_limited,
            failed=tally.failed,
            rate=tally.items_per_minute(tally.clock()),
        )

    def collection_started(self, collection: str, total: int | None) -> None:
        tally = self._tallies.start(collection, total)
        self._restart(tally, total=total, completed=0)

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
        tally = self._tallies.get(collection)
        changed = tally.enter(phase, done=done, total=total)
        if phase in ("setup", "publish") and changed:
            # The bar counts this phase's own steps: a full bar of written items with an ETA
            # of 0:00:00 said nothing of the minutes publishing takes.
            self._restart(tally, total=total, completed=done)
        elif phase in ("setup", "publish"):
            self._progress.update(
                self._task(collection), completed=done, description=self._describe(tally)
            )
        else:
            self._progress.update(self._task(collection), description=self._describe(tally))

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        task = self._task(collection)
        tally = self._tallies.get(collection)
        tally.advance(done=done, failed=failed, unchanged=unchanged)
        self._progress.update(
            task,
            advance=done + failed + unchanged,
            failed=tally.failed,
            rate=tally.items_per_minute(tally.clock()),
            description=self._describe(tally),
        )

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        task = self._task(collection)
        tally = self._tallies.get(collection)
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
        tally = self._tallies.get(collection)
        tally.enter("finish")
        processed = tally.processed
        self._restart(tally, total=max(processed, tally.total or 0), completed=processed)
        self._progress.stop_task(self._task(collection))
        if self._quiet:
            summary = ", ".join(f"{state} {count}" for state, count in counts.items())
            self.console.print(f"{redact(collection)}: {summary}")


class PrefixedSink:
    """Another sink's events with the job's name before each collection and message, so jobs
    run at once (``flowport run A B``) share one live display, one line per job's collection."""

    def __init__(self, inner: ProgressSink, job: str) -> None:
        self._inner = inner
        self._job = job

    def count_requests(self, counter: RequestCounter) -> None:
        prefix = f"{self._job}: "
        self._inner.count_requests(
            lambda name: counter(name.removeprefix(prefix)) if name.startswith(prefix) else 0
        )

    def collection_started(self, collection: str, total: int | None) -> None:
        self._inner.collection_started(f"{self._job}: {collection}", total)

    def phase(
        self, collection: str, phase: Phase, *, done: int = 0, total: int | None = None
    ) -> None:
        self._inner.phase(f"{self._job}: {collection}", phase, done=done, total=total)

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
