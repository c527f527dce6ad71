"""Shared parts of the benchmarks: a sandbox in its own process, generated CSVs, job files, and
the real ``flowport`` CLI run as a child whose own CPU time and peak RSS come from ``wait4``.

Everything listens on 127.0.0.1 and lives in a temporary folder; nothing is written to the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowport.pipeline.sandbox.process import SandboxProcess
from flowport.pipeline.sandbox.process import sandbox_process as shared_sandbox_process

__all__ = [
    "BENCH_TOKEN_ENV",
    "CHILD_PYTHON",
    "FLOWPORT",
    "REPO",
    "TOKEN",
    "UNLIMITED",
    "CliRun",
    "PreparedJob",
    "SandboxProcess",
    "StatsPoller",
    "bench_main",
    "hot_spots",
    "item_write_requests",
    "prepared_job",
    "print_json",
    "reference_cpu_seconds",
    "run_flowport",
    "sandbox_process",
    "scratch_dir",
    "write_csv",
    "write_job",
]

REPO = Path(__file__).resolve().parents[1]
# A benchmark that shares a helper with the tests imports it from ``tests`` (after this module).
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
CHILD_PYTHON = str(REPO / ".venv" / "bin" / "python")
FLOWPORT = str(REPO / ".venv" / "bin" / "flowport")
TOKEN = "bench-token"
BENCH_TOKEN_ENV = "FLOWPORT_BENCH_TOKEN"
#: Routes whose successful answers write items (the steady-state traffic, not setup).
ITEM_WRITE_ROUTES = (
    "/v2/collections/{collection_id}/items",
    "/v2/collections/{collection_id}/items/live",
    "/v2/collections/{collection_id}/items/publish",
    "/v2/collections/{collection_id}/items/bulk",
)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"flowport-bench-{prefix}-") as folder:
        yield Path(folder)


@contextmanager
def sandbox_process(
    *,
    rate_limit: int,
    window_seconds: float,
    item_limit: int,
    seed: int = 0,
    faults: dict[str, float | str] | None = None,
) -> Iterator[SandboxProcess]:
    """A sandbox in its own process (so its CPU is not the pipeline's), stopped on exit."""
    with shared_sandbox_process(
        token=TOKEN,
        seed=seed,
        rate_limit=rate_limit,
        window_seconds=window_seconds,
        item_limit=item_limit,
        options=faults,
        python=CHILD_PYTHON,
        cwd=REPO,
    ) as sandbox:
        yield sandbox


def item_write_requests(stats: dict[str, Any]) -> tuple[int, int]:
    """(item-write requests, all other requests) counted by the sandbox, any status."""
    items = other = 0
    for row in stats["endpoints"]:
        if row["method"] in ("POST", "PATCH") and row["route"] in ITEM_WRITE_ROUTES:
            items += row["count"]
        else:
            other += row["count"]
    return items, other


@dataclass
class StatsPoller:
    """Samples the sandbox's item-write request count every ``interval`` s in a thread, so the
    steady-state rate is read between the first and the last item write, setup excluded."""

    sandbox: SandboxProcess
    interval: float = 0.05
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> StatsPoller:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _sample(self) -> None:
        writes, _ = item_write_requests(self.sandbox.stats())
        self.samples.append((time.perf_counter(), writes))

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def steady_state(self) -> tuple[int, float]:
        """(item-write requests, seconds) between the first sample that saw an item write and
        the first sample that saw the final count: setup before and the tail after stay out."""
        first = next((s for s in self.samples if s[1] > 0), None)
        if first is None:
            return 0, 0.0
        final = self.samples[-1][1]
        last = next(s for s in self.samples if s[1] == final)
        return last[1] - first[1], last[0] - first[0]

    def halves(self) -> tuple[float, float]:
        """Item-write requests per second in the first and the second half of the item writes:
        a pipeline that slows down as the run grows shows a lower second figure."""
        first = next((s for s in self.samples if s[1] > 0), None)
        if first is None:
            return 0.0, 0.0
        final = self.samples[-1][1]
        last = next(s for s in self.samples if s[1] == final)
        middle = next(s for s in self.samples if s[1] >= first[1] + (final - first[1]) / 2)
        early = (middle[1] - first[1]) / (middle[0] - first[0]) if middle[0] > first[0] else 0.0
        late = (last[1] - middle[1]) / (last[0] - middle[0]) if last[0] > middle[0] else 0.0
        return early, late


def write_csv(path: Path, rows: int) -> None:
    """Blog-post-like rows: a title, a short body, a number, a flag and a date."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("id,title,summary,score,featured,published_at\n")
        for n in range(rows):
            handle.write(
                f"{n},Post number {n},A short summary of post {n} with a few words,"
                f"{n % 997}.5,{'true' if n % 3 == 0 else 'false'},"
                f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}T10:00:00Z\n"
            )


def write_job(
    path: Path,
    *,
    api: str,
    site_id: str,
    csv_path: Path,
    rate_limit: int,
    window_seconds: float,
    mode: str = "live",
    concurrency: int = 4,
    item_limit: int | None = None,
) -> None:
    declared = f"item_limit = {item_limit}\n" if item_limit is not None else ""
    path.write_text(
        f"""[destination]
api = "{api}"
site_id = "{site_id}"
token_env = "{BENCH_TOKEN_ENV}"
rate_limit = {rate_limit}
rate_window_seconds = {window_seconds}
concurrency = {concurrency}
{declared}
[run]
mode = "{mode}"
batch_size = 100

[collections.posts]
target = "Posts"
create_missing = true
external_key_field = "source-key"
source = {{ type = "csv", path = "{csv_path}", key = "id" }}
slug_from = "name"

[collections.posts.fields]
name = "title"
source-key = "id"
summary = "summary"
score = {{ source = "score", transforms = ["number"] }}
featured = {{ source = "featured", transforms = ["boolean"] }}
published-at = {{ source = "published_at", transforms = ["datetime"] }}

[collections.posts.schema]
singular_name = "Post"

[collections.posts.schema.fields]
source-key = "PlainText"
summary = "PlainText"
score = "Number"
featured = "Switch"
published-at = {{ type = "DateTime", name = "Published At" }}
""",
        encoding="utf-8",
    )


@dataclass
class CliRun:
    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    events: list[dict[str, Any]]
    stderr: str
    timed_out: bool = False

    @property
    def processed(self) -> int:
        """Records the run got through: the summary's counts, else the last progress event."""
        for event in reversed(self.events):
            if event.get("event") == "run_finished":
                return int(sum(sum(per.values()) for per in event.get("collections", {}).values()))
            if event.get("event") == "progress":
                return int(event["done"]) + int(event["failed"]) + int(event["unchanged"])
        return 0

    @property
    def finished(self) -> dict[str, Any]:
        for event in reversed(self.events):
            if event.get("event") == "run_finished":
                return dict(event)
        raise RuntimeError(f"flowport printed no run_finished event:\n{self.stderr[-2000:]}")


def compile_project() -> None:
    """Byte-compile flowport's own modules, as installing a package does: with
    ``PYTHONDONTWRITEBYTECODE`` set (as on the machines here) an editable install would
    otherwise compile them again at every start, a cost no installed flowport pays."""
    import compileall

    for package in ("pipeline", "connectors", "mappings"):
        compileall.compile_dir(REPO / package, quiet=1)


def run_flowport(
    *args: str, folder: Path, profile: Path | None = None, timeout: float | None = None
) -> CliRun:
    """Run the real CLI as a child; its CPU time and peak RSS are its own (``os.wait4`` in
    ``_measured_child.py``, a small launcher: a child started from this process, grown by the
    benchmarks before, would carry this process's peak RSS into its own figure).

    Past ``timeout`` seconds the child gets SIGTERM (SIGKILL 30 s later): the benchmark always
    stops, and the figures up to that point are still read (``timed_out`` says so).
    """
    compile_project()
    command = [FLOWPORT, *args]
    if profile is not None:
        # cProfile (stdlib: no new dependency) around the same entry point; its overhead
        # inflates the CPU figure, so a profiled run is never the one reported.
        command = [CHILD_PYTHON, "-m", "cProfile", "-o", str(profile), FLOWPORT, *args]
    env = {**os.environ, BENCH_TOKEN_ENV: TOKEN}
    stdout_path, stderr_path = folder / "cli.stdout", folder / "cli.stderr"
    measured = folder / "cli.measured.json"
    launcher = [CHILD_PYTHON, str(Path(__file__).with_name("_measured_child.py"))]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        subprocess.run(
            [*launcher, str(measured), str(timeout or 0), *command],
            cwd=folder, env=env, stdout=out, stderr=err, check=True,
        )  # fmt: skip
    figures = json.loads(measured.read_text(encoding="utf-8"))
    events: list[dict[str, Any]] = []
    for line in stdout_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return CliRun(
        exit_code=int(figures["exit_code"]),
        wall_seconds=float(figures["wall_seconds"]),
        cpu_seconds=float(figures["cpu_seconds"]),
        peak_rss_mb=float(figures["peak_rss_mb"]),
        events=events,
        stderr=stderr_path.read_text(encoding="utf-8", errors="replace"),
        timed_out=bool(figures["timed_out"]),
    )


_REFERENCE_WORKLOAD = """
import time
began = time.process_time()
total = 0
for n in range(3_000_000):
    total += n * n
table = {str(n): (n, str(n)) for n in range(300_000)}
print(time.process_time() - began)
"""


def reference_cpu_seconds() -> float:
    """CPU seconds of a fixed pure-Python workload (arithmetic, strings, a dict): the machine's
    speed at the moment, to read CPU figures of different runs and sessions against. On the
    shared machines here it moves by a fifth within seconds. It runs in a child process: its
    memory must not stay in this one, whose size a child started by fork inherits at first (and
    ``ru_maxrss`` would count)."""
    answer = subprocess.run(
        [CHILD_PYTHON, "-c", _REFERENCE_WORKLOAD], capture_output=True, text=True, check=True
    )
    return float(answer.stdout.strip())


def bench_main(doc: str, run: Callable[..., dict[str, Any]], *, profile: bool = False) -> None:
    """The command line every benchmark module has: ``[--rows N] [--quick] [--profile]``,
    figures as JSON on stdout; ``run(quick, rows[, profile])`` measures."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    if profile:
        parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    figures = run(args.quick, args.rows, args.profile) if profile else run(args.quick, args.rows)
    print_json(figures)


def print_json(figures: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")


@dataclass
class PreparedJob:
    folder: Path
    sandbox: SandboxProcess
    rows: int

    def run(self, *, timeout: float | None = None, profile: Path | None = None) -> CliRun:
        return run_flowport(
            "run", "job.toml", "--log-format", "json",
            folder=self.folder, timeout=timeout, profile=profile,
        )  # fmt: skip


#: Requests per window that no run here comes near: "no rate limit".
UNLIMITED = 100_000_000


@contextmanager
def prepared_job(
    rows: int,
    *,
    rate_limit: int = UNLIMITED,
    window_seconds: float = 60.0,
    mode: str = "live",
    concurrency: int = 4,
    faults: dict[str, float | str] | None = None,
    seed: int = 0,
) -> Iterator[PreparedJob]:
    """A generated CSV of ``rows`` rows and a job file, aimed at a fresh sandbox process."""
    with (
        scratch_dir(f"{rows}") as folder,
        sandbox_process(
            rate_limit=rate_limit,
            window_seconds=window_seconds,
            item_limit=rows + 1000,
            faults={k: v for k, v in (faults or {}).items() if isinstance(v, str)},
            seed=seed,
        ) as sandbox,
    ):
        # Fault rates start now, after this harness's own site lookup: the run meets them
        # from its first request.
        rates = {k: v for k, v in (faults or {}).items() if not isinstance(v, str)}
        if rates:
            sandbox.set_faults(rates)
        write_csv(folder / "posts.csv", rows)
        write_job(
            folder / "job.toml",
            api=sandbox.base_url,
            site_id=sandbox.site_id,
            csv_path=folder / "posts.csv",
            rate_limit=min(rate_limit, 100_000),
            window_seconds=window_seconds,
            mode=mode,
            concurrency=concurrency,
            # The sandbox's: past a lower declared one (the default plan's 2,000), creates
            # would go one request at a time.
            item_limit=rows + 1000,
        )
        yield PreparedJob(folder, sandbox, rows)


def hot_spots(profile: Path, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """From a cProfile file: the functions with the most own time, and the project's own
    functions (pipeline/, mappings/, connectors/) with the most time spent under them."""
    import pstats

    stats = pstats.Stats(str(profile))
    rows = []
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        in_project = filename.startswith(str(REPO)) and "/.venv/" not in filename
        where = Path(filename).relative_to(REPO) if in_project else Path(filename).name
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
                "in_project": in_project,
            }
        )
    by_own = sorted(rows, key=lambda row: row["own_s"], reverse=True)[:limit]
    ours = [row for row in rows if row["in_project"] and "cli.py" not in row["function"]]
    by_cumulative = sorted(ours, key=lambda row: row["cumulative_s"], reverse=True)[:limit]
    return {"own_time": by_own, "project_cumulative": by_cumulative}
