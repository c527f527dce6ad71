"""The checkpoint log on SQLite and on PostgreSQL, side by side: its write path, a whole run, and
the time a job killed on one machine takes to resume on another.

1. The log's write path alone, in this process: 10,000 items as the writer records them (per
   batch of 100: the batch opened with its creates' intent, one commit; the acknowledgements,
   the intent settled and the batch closed, a second commit), then a rerun's check of the same
   10,000 records (``check_chunk``, 500 a chunk). Per backend: wall time per batch (median and
   95th percentile), this process's CPU per 1,000 items, and on PostgreSQL the server's CPU for
   the same work (its backend process, read from /proc: the server runs on this machine).
2. The real CLI writing 10,000 items into a sandbox with no rate limit, once per backend: wall
   time and flowport's own CPU (``os.wait4``).
3. A run SIGKILLed mid-way with its state in PostgreSQL: how long until another process holds
   the job's lock (PostgreSQL ends the dead client's session when the kernel closes its socket),
   the rerun's wall time, the time lost against the same job run once without a kill, and the
   items lost and duplicated in the sandbox.

PostgreSQL: ``FLOWPORT_BENCH_STATE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each measurement uses a schema of its own and drops it.

    .venv/bin/python benchmarks/bench_state_backends.py [--quick] [--rows N]
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from _harness import (
    BENCH_TOKEN_ENV,
    FLOWPORT,
    TOKEN,
    bench_main,
    item_write_requests,
    prepared_job,
    run_flowport,
    scratch_dir,
)

from flowport.pipeline.checkpoint import Acknowledged, CheckpointLog
from flowport.pipeline.state import JobLocked, postgres_job_lock
from flowport.pipeline.statedb import job_schema

STATE_URL = os.environ.get("FLOWPORT_BENCH_STATE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 100
CHUNK = 500


@contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(job id, schema) of a job of this benchmark's own, dropped at the end."""
    job_id = f"bench-{secrets.token_hex(6)}"
    schema = job_schema(job_id)
    try:
        yield job_id, schema
    finally:
        with psycopg.connect(STATE_URL, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _server_cpu(backend_pid: int | None) -> float:
    if backend_pid is None:
        return 0.0
    fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _write_path(log: CheckpointLog, rows: int, backend_pid: int | None) -> dict[str, Any]:
    run = log.begin_run()
    latencies: list[float] = []
    cpu, server = time.process_time(), _server_cpu(backend_pid)
    for start in range(0, rows, BATCH):
        keys = [f"k{n:07d}" for n in range(start, min(start + BATCH, rows))]
        began = time.perf_counter()
        intent = [(key, f"slug-{key}", f"h{key}") for key in keys]
        with log.batch(run, "posts", "create", len(keys), intent=intent) as batch:
            batch.acknowledge(
                [Acknowledged(key, f"wf-{key}", f"slug-{key}", f"h{key}", "done") for key in keys]
            )
            batch.settle_intent()
        latencies.append(time.perf_counter() - began)
    write_cpu = time.process_time() - cpu
    write_server = _server_cpu(backend_pid) - server
    log.start_scratch()
    cpu, server, began = time.process_time(), _server_cpu(backend_pid), time.perf_counter()
    fingerprint = "0" * 32
    for start in range(0, rows, CHUNK):
        records = [(f"k{n:07d}", fingerprint) for n in range(start, min(start + CHUNK, rows))]
        log.check_chunk("posts", records)
    check_wall = time.perf_counter() - began
    check_cpu, check_server = time.process_time() - cpu, _server_cpu(backend_pid) - server
    per_thousand = 1000 / rows
    return {
        "batch_ms_median": round(statistics.median(latencies) * 1000, 2),
        "batch_ms_p95": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 2),
        "write_client_cpu_s_per_1000": round(write_cpu * per_thousand, 4),
        "write_server_cpu_s_per_1000": round(write_server * per_thousand, 4),
        "rerun_check_s": round(check_wall, 3),
        "rerun_check_client_cpu_s_per_1000": round(check_cpu * per_thousand, 4),
        "rerun_check_server_cpu_s_per_1000": round(check_server * per_thousand, 4),
    }


def measure_write_path(rows: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with scratch_dir("state") as folder, CheckpointLog.open(folder / "checkpoint.sqlite") as log:
        figures["sqlite"] = _write_path(log, rows, None)
    with postgres_schema() as (_job_id, schema):
        in_postgres = CheckpointLog.open_postgres(STATE_URL, schema)
        assert in_postgres is not None
        with in_postgres:
            backend_pid = int(in_postgres._db.execute("SELECT pg_backend_pid()").fetchone()[0])
            figures["postgres"] = _write_path(in_postgres, rows, backend_pid)
    return figures


def _state_table(job_id: str) -> str:
    return f'\n[state]\nurl = "{STATE_URL}"\njob_id = "{job_id}"\n'


def measure_cli(rows: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for backend in ("sqlite", "postgres"):
        with prepared_job(rows) as job, postgres_schema() as (job_id, _schema):
            if backend == "postgres":
                path = job.folder / "job.toml"
                path.write_text(path.read_text() + _state_table(job_id))
            run = job.run(timeout=900)
            figures[backend] = {
                "exit_code": run.exit_code,
                "wall_s": round(run.wall_seconds, 2),
                "flowport_cpu_s": round(run.cpu_seconds, 2),
                "flowport_cpu_s_per_1000": round(run.cpu_seconds * 1000 / rows, 4),
            }
    return figures


def _sandbox_counts(job: Any) -> tuple[int, int]:
    """(source keys missing from the sandbox, items beyond one per key)."""
    items = [
        item for collection in job.sandbox.state()["collections"] for item in collection["items"]
    ]
    keys = Counter(item["fieldData"].get("source-key") for item in items)
    missing = sum(1 for n in range(job.rows) if str(n) not in keys)
    return missing, sum(count - 1 for count in keys.values())


def _uninterrupted_wall(rows: int) -> float:
    """The same job at the same rate, state in PostgreSQL, run once without a kill."""
    with (
        prepared_job(rows, rate_limit=10, window_seconds=1.0) as job,
        postgres_schema() as (job_id, _schema),
    ):
        path = job.folder / "job.toml"
        path.write_text(path.read_text() + _state_table(job_id))
        return job.run(timeout=900).wall_seconds


def measure_resume(rows: int) -> dict[str, Any]:
    """Kill a run mid-way (its state in PostgreSQL), then take its lock and finish it.
    At 10 requests a second (1,000 items) the kill lands mid-run at any size."""
    with (
        prepared_job(rows, rate_limit=10, window_seconds=1.0) as job,
        postgres_schema() as (job_id, schema),
    ):
        path = job.folder / "job.toml"
        path.write_text(path.read_text() + _state_table(job_id))
        env = {**os.environ, BENCH_TOKEN_ENV: TOKEN}
        process = subprocess.Popen(
            [FLOWPORT, "run", "job.toml", "--log-format", "json"],
            cwd=job.folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Killed once a third of the items' requests were answered: mid-run, work on both sides.
        began = time.perf_counter()
        while item_write_requests(job.sandbox.stats())[0] < max(1, rows // BATCH // 3):
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = time.perf_counter()
        killed_after = killed - began
        while True:
            try:
                with postgres_job_lock(STATE_URL, schema):
                    break
            except JobLocked:
                time.sleep(0.005)
        lock_free = time.perf_counter() - killed
        rerun = run_flowport("run", "job.toml", "--log-format", "json", folder=job.folder)
        missing, duplicated = _sandbox_counts(job)
        written_before = rows - _resumed(rerun.events)
    baseline = _uninterrupted_wall(rows)
    return {
        "uninterrupted_wall_s": round(baseline, 2),
        # The kill's cost: both runs (the killed one to its kill, the wait for the lock, the
        # rerun with its start-up and reconcile) against one run that was never killed.
        "time_lost_s": round(killed_after + lock_free + rerun.wall_seconds - baseline, 2),
        "killed_after_s": round(killed_after, 2),
        "items_written_before_kill": written_before,
        "lock_free_after_kill_ms": round(lock_free * 1000, 1),
        "rerun_exit_code": rerun.exit_code,
        "rerun_wall_s": round(rerun.wall_seconds, 2),
        "rerun_outcomes": _finished(rerun.events).get("collections", {}).get("posts", {}),
        "rerun_requests": _finished(rerun.events).get("requests"),
        "lost": missing,
        "duplicated": duplicated,
    }


def _finished(events: list[dict[str, Any]]) -> dict[str, Any]:
    finished = [e for e in events if e.get("event") == "run_finished"]
    return finished[-1] if finished else {}


def _resumed(events: list[dict[str, Any]]) -> int:
    finished = [e for e in events if e.get("event") == "run_finished"]
    if not finished:
        return 0
    per = finished[-1].get("collections", {}).get("posts", {})
    return int(sum(v for k, v in per.items() if k != "unchanged" and isinstance(v, int)))


def run(quick: bool, rows: int | None) -> dict[str, Any]:
    rows = rows or (2_000 if quick else 10_000)
    return {
        "rows": rows,
        "write_path": measure_write_path(rows),
        "cli_run": measure_cli(rows),
        "resume_after_sigkill_postgres": measure_resume(rows),
    }


if __name__ == "__main__":
    bench_main(__doc__ or "", run)
