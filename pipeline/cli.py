"""The ``flowport`` command.

Exit codes (stable, for cron and CI)::

    0  every item done
    1  the run finished but some items failed (``flowport errors JOB`` lists them)
    2  a bad job file or bad arguments; nothing was written
    3  aborted: a fatal error, another run of the job holds its lock, or interrupted

``run`` takes an exclusive ``fcntl.flock`` on ``<state dir>/lock``: the kernel drops it when the
process dies, so even a SIGKILLed run never leaves the job locked. A job whose state is in
PostgreSQL takes an advisory lock there instead (``flowport.pipeline.state``). Human-facing
errors go to stderr; with ``--log-format json`` the event stream goes to stdout (see
``flowport.pipeline.logging``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import errno
import fcntl
import functools
import gc
import inspect
import json
import os
import platform
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from flowport.base.errors import ConfigError, FatalError, FlowportError
from flowport.pipeline import __version__
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.frames import dataframe_collections
from flowport.pipeline.jobfile import Job, load_job
from flowport.pipeline.logging import JsonLinesSink, PrefixedSink, RichProgressSink, redact
from flowport.pipeline.results import REMOVED_KIND, iter_item_errors, iter_item_warnings
from flowport.pipeline.state import (
    CHECKPOINT_FILE,
    JobLocked,
    open_job_log,
    postgres_job_lock,
    state_location,
)

__all__ = [
    "CHECKPOINT_FILE",
    "EXIT_ABORTED",
    "EXIT_BAD_JOB",
    "EXIT_FAILED_ITEMS",
    "EXIT_OK",
    "LOCK_FILE",
    "JobLocked",
    "app",
    "job_lock",
    "lock_job",
    "main",
]

EXIT_OK = 0
EXIT_FAILED_ITEMS = 1
EXIT_BAD_JOB = 2
EXIT_ABORTED = 3

#: The file lock, inside the job's state folder (the SQLite backend).
LOCK_FILE = "lock"
#: ``flowport run --jobs``'s default: jobs wait on their tokens' budgets far more than on the CPU,
#: but each holds its own memory and connections.
DEFAULT_JOBS_AT_ONCE = 4

app = typer.Typer(
    name="flowport",
    help="Move content into the Webflow CMS: fast, exact, resumable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_stderr = Console(stderr=True, highlight=False)
_stdout = Console(highlight=False)


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    text = "text"


class ErrorFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


JobArgument = Annotated[
    Path, typer.Argument(help="The job file (TOML).", show_default=False, dir_okay=False)
]


def _fail(code: int, text: str) -> NoReturn:
    _stderr.print(redact(text), markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _load(path: Path) -> Job:
    try:
        return load_job(path)
    except ConfigError as exc:
        _fail(EXIT_BAD_JOB, f"error: {exc}")


def _refuse_library_only_sources(job: Job, job_file: Path) -> None:
    """A dataframe or dlt source takes its rows from Python: the command line has none to give."""
    names = dataframe_collections(job)
    if names:
        listed = ", ".join(names)
        _fail(
            EXIT_BAD_JOB,
            f"error: {job_file}: {listed}: a dataframe source is for library use; the command "
            "line has no DataFrame to give it\n"
            f"fix: run the job from Python: await flowport.run(flowport.load_job("
            f"{str(job_file)!r}), sources={{{names[0]!r}: df}})",
        )
    loaded_by_dlt = [name for name, c in job.collections.items() if c.source.type == "dlt"]
    if loaded_by_dlt:
        _fail(
            EXIT_BAD_JOB,
            f"error: {job_file}: {', '.join(loaded_by_dlt)}: a dlt source takes the rows a dlt "
            "pipeline loads; the command line has none to give it\n"
            f"fix: load it from Python: pipeline.run(data, destination=flowport_webflow("
            f"{str(job_file)!r})) (README, dlt destination)",
        )


@contextlib.contextmanager
def job_lock(state_dir: Path) -> Iterator[None]:
    """Hold the job's lock for the block, or raise :class:`JobLocked` at once."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise JobLocked(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_job(job: Job) -> contextlib.AbstractContextManager[None]:
    """The job's lock where its state is: a file lock, or PostgreSQL's advisory lock."""
    location = state_location(job)
    if location.url is None or location.schema is None:
        return job_lock(job.state_dir)
    return postgres_job_lock(location.url, location.schema)


def _open_checkpoint(job: Job) -> CheckpointLog | None:
    try:
        return open_job_log(job, create=False)
    except ConfigError as exc:
        _fail(EXIT_BAD_JOB, f"error: {exc}")
    except FatalError as exc:
        _fail(EXIT_ABORTED, f"error: {exc}")


def _damage_in(exc: BaseException) -> sqlite3.DatabaseError | None:
    """The damaged-database error ``exc`` is or holds (a run's task group wraps it), if any.

    SQLite finds a damaged page only when a query reads it ("database disk image is
    malformed", "file is not a database"), so any read can raise it, not only the open.
    Locks, a full disk and constraint failures are other subclasses: not damage."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _damage_in(inner)
            if found is not None:
                return found
        return None
    if type(exc) is sqlite3.DatabaseError:
        return exc
    if exc.__context__ is not None and exc.__context__ is not exc:
        return _damage_in(exc.__context__)
    return None


def _damaged_log_message(job: Job, damage: sqlite3.DatabaseError) -> str:
    path = job.state_dir / CHECKPOINT_FILE
    return (
        f"error: the checkpoint log {path} is damaged ({damage}); restore it from a backup, "
        "or move it away and run the job again: adoption rebuilds it from what is in Webflow "
        "(by slug or external key), without duplicates"
    )


@contextlib.contextmanager
def _damaged_log_stops(job: Job) -> Iterator[None]:
    """A damaged checkpoint log found on any read: one line and exit 3, no traceback."""
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        damage = _damage_in(exc)
        if damage is None:
            raise
        _fail(EXIT_ABORTED, _damaged_log_message(job, damage))


FullOption = Annotated[
    bool,
    typer.Option(
        "--full",
        help="Read incremental sources whole for this run (their saved cursors ignored, "
        "saved again at the end), so changes the cursor missed and removals are seen.",
    ),
]
ConflictsOption = Annotated[
    str | None,
    typer.Option(
        "--conflicts",
        help="For this run, what to do with items changed in Webflow since flowport's last "
        "write whose record changed too: report, overwrite or merge (default: the job's).",
        case_sensitive=False,
    ),
]
RehomeOption = Annotated[
    bool,
    typer.Option(
        "--rehome",
        help="The target collection or site changed: create or adopt the logged items "
        "there instead of stopping.",
    ),
]


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="auto: a live display on a terminal, JSON lines otherwise.",
        case_sensitive=False,
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only warnings, errors and totals.")
]


@app.command()
def run(
    job_files: Annotated[
        list[Path],
        typer.Argument(
            help="The job file (TOML); or several, or a folder of them (its *.toml), run at once.",
            show_default=False,
        ),
    ],
    log_format: LogFormatOption = LogFormat.auto,
    quiet: QuietOption = False,
    full: FullOption = False,
    rehome: RehomeOption = False,
    conflicts: ConflictsOption = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=256,
            help="With several job files: how many run at once (the others wait their turn).",
        ),
    ] = DEFAULT_JOBS_AT_ONCE,
) -> None:
    """Run the job: read the sources, write to Webflow, resume where the last run stopped."""
    if len(job_files) == 1 and not job_files[0].is_dir():
        _run_job_file(job_files[0], log_format, quiet, full, rehome, conflicts)
    options = _ManyOptions(log_format, quiet, full, rehome, conflicts, jobs)
    _run_job_files(_job_files_in(job_files), options)


def _run_job_file(
    job_file: Path,
    log_format: LogFormat,
    quiet: bool,
    full: bool,
    rehome: bool,
    conflicts: str | None,
) -> NoReturn:
    """One job, as ``flowport run JOB`` has always run it: its live display, its summary."""
    job = _with_conflicts(_load(job_file), conflicts)
    _refuse_library_only_sources(job, job_file)
    if job.destination.api != "sandbox":
        try:
            job.token()  # before the lock creates the state folder: a bad job leaves no trace
        except ConfigError as exc:
            _fail(EXIT_BAD_JOB, f"error: {exc}")
    use_json = log_format is LogFormat.json or (
        log_format is LogFormat.auto and not sys.stdout.isatty()
    )
    from flowport.pipeline.runner import RunSummary

    # The summary is ours, not the runner's: whatever stops the run (a fatal error, SIGINT,
    # SIGTERM from systemd, a bug), it holds the counts so far and ends the output.
    summary = RunSummary(job=job.name)
    json_sink = JsonLinesSink(sys.stdout, quiet=quiet) if use_json else None
    code, problem = EXIT_ABORTED, ""
    report: list[tuple[str, str]] = []
    with _terminate_as_exception():
        try:
            with lock_job(job), _report_when_done(job, report):
                _run_with_progress(
                    job, summary, json_sink, quiet=quiet, full_read=full, rehome=rehome
                )
            code = summary.exit_code
        except JobLocked as exc:
            problem = f"error: {exc}"
        except ConfigError as exc:
            code, problem = EXIT_BAD_JOB, f"error: {exc}"
        except FlowportError as exc:
            problem = f"aborted: {exc}"
        except (KeyboardInterrupt, Terminated) as exc:
            problem = f"{_signal_name(exc)}: stopped; the next run resumes where this one stopped"
        except Exception as exc:
            damage = _damage_in(exc)
            if damage is not None:
                problem = _damaged_log_message(job, damage)
            else:
                problem = (
                    f"aborted by an unexpected error ({type(exc).__name__}): {_crash_note(job)}"
                )
    _finish_run(summary, code, problem, json_sink, report[0] if report else None)


def _with_conflicts(job: Job, policy: str | None) -> Job:
    """The job with ``--conflicts`` applied to every collection, when given."""
    if policy is None:
        return job
    choice = policy.lower()
    if choice == "report":
        return job.with_conflicts("report")
    if choice == "overwrite":
        return job.with_conflicts("overwrite")
    if choice == "merge":
        return job.with_conflicts("merge")
    _fail(EXIT_BAD_JOB, "error: --conflicts takes report, overwrite or merge")


def _run_with_progress(
    job: Job,
    summary: Any,
    json_sink: JsonLinesSink | None,
    *,
    quiet: bool,
    full_read: bool,
    rehome: bool,
) -> None:
    """The run, reporting to JSON lines or to a live display on a terminal."""
    from flowport.pipeline.runner import run_job

    start = functools.partial(run_job, job, summary=summary, full_read=full_read, rehome=rehome)
    if json_sink is not None:
        _run_until_signal(lambda: start(progress=json_sink))
        return
    with RichProgressSink(_stdout, quiet=quiet) as rich_sink:
        _run_until_signal(lambda: start(progress=rich_sink))


class Terminated(BaseException):
    """SIGTERM (systemd stopping a unit, ``kill``): a stop like SIGINT, not a crash."""


def _signal_name(exc: BaseException) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread outside the event loop (during the
    loop, :func:`_run_until_signal` cancels the run instead), instead of ending the process
    with no word and exit 143."""

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_until_signal(make: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run a coroutine; SIGTERM cancels it as SIGINT does, so its cleanup (the checkpoint's
    final flush, the run's record) happens, then :class:`Terminated` is raised."""
    received: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:
            received.append(signal.SIGTERM)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            await make()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    handler = signal.getsignal(signal.SIGTERM)
    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if received:
            raise Terminated from None
        raise
    finally:
        # remove_signal_handler put back the default; the caller's handler goes on.
        signal.signal(signal.SIGTERM, handler)


def _crash_note(job: Job) -> str:
    """A bug's traceback goes to a file in the job's state folder, never to the terminal."""
    details = traceback.format_exc()
    try:
        job.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = job.state_dir / f"crash-{stamp}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as report:
            report.write(redact(details))
    except OSError as exc:
        return f"its details could not be saved ({exc.strerror}); the next run resumes"
    return f"details in {path}; please report it with that file. The next run resumes"


def _finish_run(
    summary: Any,
    code: int,
    problem: str,
    json_sink: JsonLinesSink | None,
    report: tuple[str, str] | None = None,
) -> NoReturn:
    """Every exit of ``run`` ends with the summary: a ``run_finished`` line in JSON, a table
    and a totals line on a terminal, with the exit code and, when it stopped, why; then where
    the run report is, or why it is not (``report`` or ``report_error`` in JSON)."""
    if problem:
        # The CLI knows why better than the runner, which saw only a cancellation.
        summary.aborted = problem.removeprefix("error: ").removeprefix("aborted: ")
    result = summary.as_dict()
    result["exit_code"] = code
    if problem:
        _stderr.print(redact(problem), markup=False, soft_wrap=True)
    written, unwritten = report or ("", "")
    if json_sink is not None:
        if written:
            result["report"] = written
        if unwritten:
            result["report_error"] = unwritten
        json_sink.emit("run_finished", **result)
    else:
        _print_summary(result)
        if written or unwritten:
            line = f"report: {written}" if written else f"report: {unwritten}"
            _stdout.print(redact(line), markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _assets_line(counts: dict[str, int]) -> str:
    """The assets stage's files, in words: ``assets: 6 uploaded (48,210 bytes), 2 reused…``."""
    parts = [
        f"{counts.get('uploaded', 0)} uploaded ({counts.get('bytes', 0):,} bytes)",
        *(
            f"{counts[name]} {name}"
            for name in ("deduplicated", "reused", "failed")
            if counts.get(name)
        ),
        *([f"{counts['api_requests']} API requests"] if counts.get("api_requests") else []),
    ]
    if counts.get("planned"):
        unknown = counts.get("planned_unknown_size", 0)
        size = f"{counts.get('planned_bytes', 0):,} bytes" + (
            f", {unknown} of unknown size" if unknown else ""
        )
        parts = [f"{counts['planned']} to upload ({size})", *parts[1:]]
    return "assets: " + ", ".join(parts)


def _print_summary(summary: dict[str, Any]) -> None:
    what = "plan" if summary.get("dry_run") else "run"
    table = Table(title=f"{what} of {summary.get('job', '')}", title_justify="left")
    outcomes = sorted({o for per in summary.get("collections", {}).values() for o in per})
    table.add_column("collection")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for name, per in summary.get("collections", {}).items():
        table.add_row(name, *(str(per.get(o, 0)) for o in outcomes))
    _stdout.print(table)
    extras = {
        k: v
        for k, v in summary.items()
        if k not in ("collections", "job", "removals", "conflicts", "assets", "retry_timeline")
        and v not in (None,)
    }
    _stdout.print(redact(" ".join(f"{k}={v}" for k, v in extras.items())), markup=False)
    for conflict in summary.get("conflicts", []):
        line = _conflict_line(conflict, planned=bool(summary.get("dry_run")))
        _stdout.print(redact(line), markup=False)
    if summary.get("assets"):
        _stdout.print(_assets_line(summary["assets"]), markup=False)
    for name, keys in summary.get("removals", {}).items():
        shown = ", ".join(keys[:10]) + (", …" if len(keys) > 10 else "")
        _stdout.print(
            redact(f"{name}: {len(keys)} records gone from the source, items kept: {shown}"),
            markup=False,
        )


# ---- several jobs at once (README, "Many jobs at once") ------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _ManyOptions:
    log_format: LogFormat
    quiet: bool
    full: bool
    rehome: bool
    conflicts: str | None
    jobs: int


@dataclasses.dataclass(slots=True)
class _Outcome:
    """One job's part of a ``flowport run A B ...``: its summary, exit code and why it stopped."""

    label: str
    summary: Any
    code: int = EXIT_ABORTED
    problem: str = ""
    started: bool = False
    finished: bool = False


def _job_files_in(paths: list[Path]) -> list[Path]:
    """The job files named, a folder standing for its ``*.toml``; bad arguments exit 2."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not inside:
                _fail(EXIT_BAD_JOB, f"error: {path}: a folder with no job file (*.toml) in it")
            found.extend(inside)
        else:
            found.append(path)
    seen: set[Path] = set()
    for path in found:
        if path.resolve() in seen:
            _fail(EXIT_BAD_JOB, f"error: {path}: named twice; each job runs once at a time")
        seen.add(path.resolve())
    return found


def _labels(paths: list[Path]) -> list[str]:
    """Each job's name in log lines and summaries: its file's stem, or its path when two
    files in different folders share a stem."""
    stems = [path.stem for path in paths]
    return [p.stem if stems.count(p.stem) == 1 else str(p) for p in paths]


def _prepared(path: Path, label: str, options: _ManyOptions) -> tuple[Job | None, _Outcome]:
    """The job, ready to run, or (None, its outcome): a bad job file is that job's exit 2,
    and the others run."""
    from flowport.pipeline.runner import RunSummary

    outcome = _Outcome(label, RunSummary(job=label))
    try:
        job = load_job(path)
        if options.conflicts is not None:
            job = _with_conflicts(job, options.conflicts)
        names = dataframe_collections(job)
        if names:
            raise ConfigError(
                f"{path}: {', '.join(names)}: a dataframe source is for library use; the "
                "command line has no DataFrame to give it"
            )
        if job.destination.api != "sandbox":
            job.token()
    except ConfigError as exc:
        outcome.code, outcome.problem = EXIT_BAD_JOB, f"error: {exc}"
        return None, outcome
    return job, outcome


async def _one_of_many(
    job: Job, outcome: _Outcome, sink: Any, options: _ManyOptions, gate: asyncio.Semaphore
) -> None:
    """One job under its own lock, its errors its own: the others go on."""
    from flowport.pipeline.runner import run_job

    async with gate:
        outcome.started = True
        try:
            with lock_job(job):
                await run_job(
                    job,
                    summary=outcome.summary,
                    progress=sink,
                    full_read=options.full,
                    rehome=options.rehome,
                )
            outcome.code = outcome.summary.exit_code
        except JobLocked as exc:
            outcome.problem = f"error: {exc}"
        except ConfigError as exc:
            outcome.code, outcome.problem = EXIT_BAD_JOB, f"error: {exc}"
        except FlowportError as exc:
            outcome.problem = f"aborted: {exc}"
        except Exception as exc:
            damage = _damage_in(exc)
            outcome.problem = (
                _damaged_log_message(job, damage)
                if damage is not None
                else f"aborted by an unexpected error ({type(exc).__name__}): {_crash_note(job)}"
            )
        outcome.finished = True


def _run_job_files(paths: list[Path], options: _ManyOptions) -> NoReturn:
    """Every job at once, ``options.jobs`` at a time, in one event loop (so jobs sharing a
    token share its budget); a summary per job, then one line and the highest exit code."""
    if options.conflicts is not None and options.conflicts.lower() not in (
        "report",
        "overwrite",
        "merge",
    ):
        _fail(EXIT_BAD_JOB, "error: --conflicts takes report, overwrite or merge")
    prepared = [
        _prepared(p, label, options) for p, label in zip(paths, _labels(paths), strict=True)
    ]
    use_json = options.log_format is LogFormat.json or (
        options.log_format is LogFormat.auto and not sys.stdout.isatty()
    )
    sinks = {
        o.label: JsonLinesSink(sys.stdout, quiet=options.quiet, job=o.label) for _, o in prepared
    }
    gate = asyncio.Semaphore(options.jobs)

    async def every_job(display: Any) -> None:
        async with asyncio.TaskGroup() as group:
            for job, outcome in prepared:
                if job is not None:
                    sink = (
                        sinks[outcome.label] if use_json else PrefixedSink(display, outcome.label)
                    )
                    group.create_task(_one_of_many(job, outcome, sink, options, gate))

    stopped = ""
    with _terminate_as_exception():
        try:
            if use_json:
                _run_until_signal(lambda: every_job(None))
            else:
                with RichProgressSink(_stdout, quiet=options.quiet) as display:
                    _run_until_signal(lambda: every_job(display))
        except (KeyboardInterrupt, Terminated) as exc:
            stopped = _signal_name(exc)
    _finish_runs([o for _, o in prepared], stopped, sinks if use_json else None)


def _finish_runs(
    outcomes: list[_Outcome], stopped: str, sinks: dict[str, JsonLinesSink] | None
) -> NoReturn:
    """Each job's summary, as a run of one job ends, then the lot's line and exit code."""
    for outcome in outcomes:
        if stopped and not outcome.finished and not outcome.problem:
            outcome.problem = (
                f"{stopped}: stopped; the next run resumes where this one stopped"
                if outcome.started
                else f"{stopped}: not started"
            )
        if outcome.problem:
            outcome.summary.aborted = outcome.problem.removeprefix("error: ").removeprefix(
                "aborted: "
            )
            _stderr.print(
                redact(f"{outcome.label}: {outcome.problem}"), markup=False, soft_wrap=True
            )
        result = outcome.summary.as_dict()
        result["exit_code"] = outcome.code
        if sinks is not None:
            sinks[outcome.label].emit("run_finished", **result)
        else:
            _print_summary(result)
    worst = max(outcome.code for outcome in outcomes)
    codes = {o.label: o.code for o in outcomes}
    if sinks is not None:
        JsonLinesSink(sys.stdout).emit("runs_finished", jobs=codes, exit_code=worst)
    else:
        counts = ", ".join(
            f"{sum(1 for c in codes.values() if c == code)} exit {code}"
            for code in sorted(set(codes.values()))
        )
        _stdout.print(f"{len(outcomes)} jobs: {counts}; exit code {worst}", markup=False)
    raise typer.Exit(worst)


@app.command()
def plan(
    job_file: JobArgument,
    output: Annotated[
        str, typer.Option("--format", help="table or json.", case_sensitive=False)
    ] = "table",
    conflicts: ConflictsOption = None,
) -> None:
    """Say what a run would create, update, leave unchanged and remove; write nothing."""
    if output not in ("table", "json"):
        _fail(EXIT_BAD_JOB, "error: --format takes table or json")
    job = _with_conflicts(_load(job_file), conflicts)
    _refuse_library_only_sources(job, job_file)
    from flowport.pipeline.runner import run_job

    try:
        with _damaged_log_stops(job):
            summary = asyncio.run(run_job(job, dry_run=True))
    except ConfigError as exc:
        _fail(EXIT_BAD_JOB, f"error: {exc}")
    except FlowportError as exc:
        _fail(EXIT_ABORTED, f"aborted: {exc}")
    result = summary.as_dict()
    if output == "json":
        _stdout.print_json(data=result)
        raise typer.Exit(summary.exit_code)
    _print_summary({k: v for k, v in result.items() if k not in ("samples", "notes", "warnings")})
    for warning in summary.warnings:
        _stdout.print(
            redact(
                f"{warning['collection']} {warning['key']} would warn {warning['kind']}"
                f" ({warning['field'] or 'record'}): {warning['excerpt']}"
            ),
            markup=False,
        )
    for note in summary.notes:
        _stdout.print(redact(f"note: {note}"), markup=False)
    for sample in summary.samples:
        _stdout.print(f"{sample['collection']} {sample['key']} would change:", markup=False)
        for field_slug, change in sample["changes"].items():
            _stdout.print(
                redact(f"  {field_slug}: {change['from']!r} -> {change['to']!r}"), markup=False
            )
    raise typer.Exit(summary.exit_code)


def _conflict_line(conflict: Mapping[str, Any], *, planned: bool) -> str:
    """One item changed in Webflow and in the source, and what the run does (or would do)."""
    fields = ", ".join(conflict["fields"]) or "fields not known"
    done = {
        "conflicts": ("left as it is (conflict)", "a run would leave it as it is (conflict)"),
        "overwritten": ("overwritten", "a run would overwrite it"),
        "merged": (
            "merged (only the fields the source changed)",
            "a run would merge it (only the fields the source changed)",
        ),
    }[conflict["outcome"]][planned]
    return (
        f"{conflict['collection']} {conflict['key']} (item {conflict['item_id']}): changed in "
        f"Webflow at {conflict['changed_at']} ({fields}) and in the source: {done}"
    )


@app.command()
def status(job_file: JobArgument) -> None:
    """Counts per collection and state, and the last run's summary."""
    job = _load(job_file)
    log = _open_checkpoint(job)
    if log is None:
        _stdout.print(f"{job_file}: no run yet ({state_location(job).describe()})", markup=False)
        return
    with _damaged_log_stops(job), log:
        counts = log.counts()
        warning_counts = log.warnings.counts()
        asset_counts = log.assets.counts()
        last = log.last_run()
    states = ("done", "staged", "sending", "failed")
    table = Table(title=f"{job_file}", title_justify="left")
    table.add_column("collection")
    for state in states:
        table.add_column(state, justify="right")
    table.add_column("total", justify="right")
    names = list(job.collections) + [n for n in counts if n not in job.collections]
    for name in names:
        per = counts.get(name, {})
        table.add_row(name, *(str(per.get(s, 0)) for s in states), str(sum(per.values())))
    _stdout.print(table)
    # A line per collection under the table, rather than a column in it: the table's columns
    # are item states, and a warned item is in one of them as well.
    for name, kinds in warning_counts.items():
        listed = ", ".join(f"{kind} {n}" for kind, n in kinds.items())
        _stdout.print(f"{name} warnings: {listed} (flowport warnings lists them)", markup=False)
    if asset_counts:
        # Unsettled (intent, created) assets are a killed run's: the next run settles them.
        listed = ", ".join(f"{state} {n}" for state, n in sorted(asset_counts.items()))
        _stdout.print(f"assets moved into the site: {listed}", markup=False)
    if last is None:
        _stdout.print("no run recorded yet")
        return
    finished = (
        f"finished {last['finished_at']}"
        if last["finished_at"]
        else "not finished (running, or killed)"
    )
    _stdout.print(
        f"last run #{last['id']}: started {last['started_at']}, {finished}, "
        f"outcome {last['outcome'] or 'unknown'}",
        markup=False,
    )
    if last["summary"]:
        # The retries' timeline is for the run report's chart: a line a second is noise here.
        shown = {k: v for k, v in last["summary"].items() if k != "retry_timeline"}
        _stdout.print(redact(json.dumps(shown, indent=2, sort_keys=True)), markup=False)
        for name, keys in (last["summary"].get("removals") or {}).items():
            _stdout.print(
                f"{name}: {len(keys)} records gone from the source, their items kept "
                "(flowport errors names them)",
                markup=False,
            )


_ERROR_COLUMNS = ("collection", "key", "field", "kind", "reason", "state", "attempts", "updated_at")


@app.command()
def errors(
    job_file: JobArgument,
    output: Annotated[
        ErrorFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
    ] = ErrorFormat.table,
) -> None:
    """Every per-item error: collection, source key, field, kind and reason."""
    job = _load(job_file)
    log = _open_checkpoint(job)
    rows: Iterator[dict[str, Any]] = iter(())
    if log is not None:
        rows = (dataclasses.asdict(row) for row in iter_item_errors(log))
    try:
        with _damaged_log_stops(job):
            _print_rows(
                rows,
                _ERROR_COLUMNS,
                6,
                output,
                title=f"errors in {job_file}",
                noun="item error",
                apart=(REMOVED_KIND, "records gone from the source, their items kept"),
            )
    finally:
        if log is not None:
            log.close()


_WARNING_COLUMNS = ("collection", "key", "field", "kind", "excerpt", "updated_at")


@app.command()
def warnings(
    job_file: JobArgument,
    output: Annotated[
        ErrorFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
    ] = ErrorFormat.table,
) -> None:
    """Every standing per-item warning (what reading or mapping a record changed or dropped):
    collection, source key, field, kind and an excerpt."""
    job = _load(job_file)
    log = _open_checkpoint(job)
    rows: Iterator[dict[str, Any]] = iter(())
    if log is not None:
        rows = (dataclasses.asdict(row) for row in iter_item_warnings(log))
    try:
        with _damaged_log_stops(job):
            _print_rows(
                rows, _WARNING_COLUMNS, 5, output, title=f"warnings in {job_file}", noun="warning"
            )
    finally:
        if log is not None:
            log.close()


def _print_rows(
    rows: Iterator[dict[str, Any]],
    columns: tuple[str, ...],
    shown: int,
    output: ErrorFormat,
    *,
    title: str,
    noun: str,
    apart: tuple[str, str] | None = None,
) -> None:
    """Rows as CSV, a JSON array (streamed: a log may hold many) or a table of the first
    ``shown`` columns with a count under it; rows of the kind ``apart`` names are counted on a
    line of their own, with its words."""
    if output is ErrorFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif output is ErrorFormat.json:
        sys.stdout.write("[")
        for n, row in enumerate(rows):
            sys.stdout.write(("," if n else "") + "\n  " + json.dumps(row, ensure_ascii=False))
        sys.stdout.write("\n]\n")
    else:
        table = Table(title=title, title_justify="left")
        for column in columns[:shown]:
            table.add_column(column, overflow="fold")
        count = kept = 0
        for row in rows:
            if apart is not None and row.get("kind") == apart[0]:
                kept += 1
            else:
                count += 1
            table.add_row(*(str(row[c] or "") for c in columns[:shown]))
        if count or kept:
            _stdout.print(table)
        _stdout.print(f"{count} {noun}{'s' if count != 1 else ''}")
        if kept and apart is not None:
            _stdout.print(f"{kept} {apart[1]}")


async def _call(function: Callable[[Job], Any], job: Job) -> list[str]:
    # validate_job may be sync or async; both are accepted.
    result = function(job)
    if inspect.isawaitable(result):
        result = await result
    return [str(problem) for problem in result]


@app.command()
def validate(
    job_file: JobArgument,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the job file only; do not call the API.")
    ] = False,
) -> None:
    """Check the job file, then (unless --offline) the target schema against the API."""
    job = _load(job_file)
    unprotected = job.token_file_warning()
    if unprotected is not None:
        _stderr.print(redact(f"warning: {unprotected}"), markup=False, soft_wrap=True)
    # Nothing is called OK before every check of its kind is done: the file's sources are
    # opened first, and the verdict comes last.
    if offline:
        from flowport.pipeline.preflight import source_problems

        _report_problems(asyncio.run(source_problems(job, files_only=True)))
        _say_job_file_ok(job, job_file)
        return
    _refuse_library_only_sources(job, job_file)
    if not job.destination.is_sandbox:
        # Said before the wait: an address that does not answer takes the whole timeout.
        _stdout.print(
            f"checking the target schema at {job.destination.api} "
            f"(timeout_seconds = {job.destination.timeout_seconds:g})…",
            markup=False,
            soft_wrap=True,
        )
    try:
        from flowport.pipeline.runner import validate_job

        problems = asyncio.run(_call(validate_job, job))
    except ConfigError as exc:
        _fail(EXIT_BAD_JOB, f"error: {exc}")
    except FlowportError as exc:
        # Fatal or not (an unreachable API is retriable for a run): here it ends the check.
        _fail(EXIT_ABORTED, f"error: cannot check the target schema: {exc}")
    except ImportError as exc:
        _fail(EXIT_ABORTED, f"error: the online check is unavailable ({exc}); try --offline")
    _report_problems(problems)
    _say_job_file_ok(job, job_file)
    _stdout.print("target schema OK")


def _report_problems(problems: list[str]) -> None:
    """Each problem on stderr, then exit 2 with a count: the last line says how it ended."""
    if not problems:
        return
    for problem in problems:
        _stderr.print(redact(f"problem: {problem}"), markup=False, soft_wrap=True)
    count = len(problems)
    _fail(EXIT_BAD_JOB, f"{count} problem{'s' if count != 1 else ''} found; nothing was written")


def _say_job_file_ok(job: Job, job_file: Path) -> None:
    order = job.write_order()
    _stdout.print(
        f"{job_file}: job file OK, {len(job.collections)} collection(s), "
        f"write order: {' → '.join(order)}",
        markup=False,
    )
    for cycle in order.cycles:
        fields = ", ".join(
            f"{name}.{slug}" for name in cycle for slug in sorted(order.deferred.get(name, ()))
        )
        _stdout.print(f"  references in a cycle ({fields}) are set in a second pass", markup=False)


def _write_report(job: Job, log: CheckpointLog, path: Path) -> Path:
    from flowport.pipeline.report import gather, write_report

    per_minute = job.rate_limit() * 60 / job.destination.rate_window_seconds
    data = gather(log, job=job.path.stem, collections=list(job.collections), rate=per_minute)
    return write_report(data, path)


@contextlib.contextmanager
def _report_when_done(job: Job, said: list[tuple[str, str]]) -> Iterator[None]:
    """The run report rewritten however the run ends, inside the job's lock (so the next run
    cannot be rewriting it meanwhile); ``said`` gets (its path, or why it was not written)."""
    try:
        yield
    finally:
        said.append(_report_after_run(job))


def _report_after_run(job: Job) -> tuple[str, str]:
    """``<state dir>/report.html`` rewritten after a run: (its path, "") or ("", why not). A
    report that cannot be written is said, never a reason for the run to fail."""
    from flowport.pipeline.report import REPORT_FILE

    try:
        found = open_job_log(job, create=False)
        if found is None:
            return "", ""
        with found as log:
            return str(_write_report(job, log, job.state_dir / REPORT_FILE)), ""
    except (OSError, sqlite3.Error, FlowportError) as exc:
        return "", f"not written ({exc}); flowport report {job.path} tries again"


@app.command()
def report(
    job_file: JobArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write it (default: report.html in the job's state folder).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Write the run report: one HTML file, openable offline, of the job's runs, throughput,
    retries, errors, warnings and assets."""
    job = _load(job_file)
    log = _open_checkpoint(job)
    if log is None:
        _fail(
            EXIT_BAD_JOB,
            f"error: {job_file}: no run yet, nothing to report (no checkpoint log in "
            f"{job.state_dir})\nfix: run it first: flowport run {job_file}",
        )
    from flowport.pipeline.report import REPORT_FILE

    path = output if output is not None else job.state_dir / REPORT_FILE
    with _damaged_log_stops(job), log:
        try:
            written = _write_report(job, log, path)
        except OSError as exc:
            _fail(EXIT_BAD_JOB, f"error: cannot write the report to {path}: {exc.strerror}")
    _stdout.print(f"report: {written}", markup=False, soft_wrap=True)


@app.command()
def version() -> None:
    """Print flowport's version."""
    _stdout.print(f"flowport {__version__} (Python {platform.python_version()})", markup=False)


def _register_sandbox() -> None:
    # The sandbox command is optional: the CLI works in an installation without it.
    try:
        from flowport.pipeline.sandbox.cli import register
    except ImportError:
        return
    register(app)


def _register_presets() -> None:
    from flowport.pipeline.presets.cli import register

    register(app)


_register_sandbox()
_register_presets()


#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc_for_a_run() -> None:
    """A run allocates a few dozen short-lived containers per record (rows, field data, request
    and answer JSON). With CPython's default thresholds (700, 10, 10) that starts a collection
    every few records, and the older generations are walked again and again with the ~60,000
    objects the imports left: about a tenth of a run's CPU (benchmarks/README.md). Young
    collections run every 20,000 allocations instead, and the imports' objects are moved out of
    the collector's reach (``gc.freeze``); cyclic garbage still goes, a little later, and the
    memory benchmark stays flat."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def main() -> None:
    # Here, not in the commands: tests call those in their own process, whose collector is
    # not ours to tune.
    if sys.argv[1:2] in (["run"], ["plan"]):
        _tune_gc_for_a_run()
    try:
        app(prog_name="flowport")
    except KeyboardInterrupt:
        _stderr.print("interrupted")
        sys.exit(EXIT_ABORTED)


if __name__ == "__main__":
    main()
