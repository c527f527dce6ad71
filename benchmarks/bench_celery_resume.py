"""A job resumed on another Celery worker after a SIGKILL: rows lost and duplicated, time lost.

    .venv/bin/python benchmarks/bench_celery_resume.py [--quick] [--rows N]

Two workers (``celery -A flowport.integrations.celery worker --concurrency 1``) on the local
RabbitMQ (127.0.0.1:5672, guest/guest; ``CELERY_BROKER_URL`` overrides), a sandbox in its own
process limited to 120 requests per 6 s window, and the job paced to that (``rate_limit = 120``,
batches of 50). First a baseline: one job run through without a kill. Then, each round, a new
job is sent; once the sandbox holds a third of its items, the worker running it is SIGKILLed
with its pool process (a lost machine), the other worker finishes it, and the killed worker is
started again for the next round. Each round's figures:

* ``redelivery_s``: from the kill to the task starting on the other worker (RabbitMQ requeues an
  unacknowledged message when the dead worker's connection drops);
* ``lock_wait_s``: from that start to holding the job's lock (the kernel released the dead
  run's ``flock`` with its process);
* ``restart_s``: from the lock to the first item the resumed run creates (load the job, read the
  checkpoint log, reconcile the creates whose answer was lost by reading them back, pace the
  first request), next to the baseline's same span (``baseline_start_s``);
* ``time_lost_s``: send-to-finish of the killed-and-resumed job minus the baseline's;
* ``lost`` and ``duplicated``: source keys missing from, or more than once in, the sandbox.

The sandbox's ``createdOn`` and the task's own times (``celery`` in its summary) are wall-clock
times of this one machine. Medians over the rounds are reported with every round's figures.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from _harness import CHILD_PYTHON, REPO, bench_main

from flowport.integrations.celery import create_app
from flowport.pipeline.sandbox.process import SandboxProcess, sandbox_process
from tests.keyed_rows import (
    COLLECTION,
    KeyedJobSettings,
    display_name,
    source_keys,
    write_keyed_job,
)

BROKER = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
TOKEN_ENV = "FLOWPORT_BENCH_TOKEN"
TOKEN = "bench-celery-" + uuid.uuid4().hex
RATE, WINDOW, BATCH = 120, 6.0, 50
JOBS = KeyedJobSettings(TOKEN_ENV, RATE, window_seconds=WINDOW, batch_size=BATCH)
#: Seconds to wait for a job, or for the workers to start: the benchmark stops by itself.
LIMIT = 300.0


class Cluster:
    """Two workers on a queue of their own, a sandbox, and a client app with results."""

    def __init__(self, folder: Path, sandbox: SandboxProcess) -> None:
        self.folder = folder
        self.sandbox = sandbox
        session = uuid.uuid4().hex[:10]
        self.queue = f"flowport-bench-{session}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CELERY_BROKER_URL": BROKER,
            "CELERY_RESULT_BACKEND": "rpc://",
            "FLOWPORT_CELERY_QUEUE": self.queue,
            TOKEN_ENV: TOKEN,
        }
        self.app = create_app(broker=BROKER, backend="rpc://", queue=self.queue)
        self.nodes = {name: f"{name}-{session}@{socket.gethostname()}" for name in ("w1", "w2")}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [CHILD_PYTHON, "-m", "celery", "-A", "flowport.integrations.celery", "worker",
                 "--concurrency", "1", "-n", self.nodes[name], "--without-gossip",
                 "--without-mingle", "--loglevel", "INFO"],
                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            if self.app.control.ping([self.nodes[name]], timeout=0.5):
                return
        raise RuntimeError(f"worker {name} did not answer a ping")

    def kill(self, name: str) -> float:
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        killed_at = time.time()
        process.wait()
        return killed_at

    def running(self, task_id: str) -> str:
        """The worker whose pool runs the task."""
        names = {node: name for name, node in self.nodes.items()}
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            active = self.app.control.inspect(list(names), timeout=1.0).active() or {}
            for node, tasks in active.items():
                if any(task["id"] == task_id for task in tasks):
                    return names[node]
        raise RuntimeError("the task did not start")

    def close(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.kill(name)
        with self.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(self.queue)
        self.app.backend.result_consumer.stop()
        self.app.pool.force_close_all()
        self.app.close()


def write_job(folder: Path, sandbox: SandboxProcess, name: str, rows: int) -> Path:
    return write_keyed_job(folder, sandbox.base_url, sandbox.site_id, name, rows, JOBS)


def _items(sandbox: SandboxProcess, name: str) -> list[dict[str, Any]]:
    for collection in sandbox.state()["collections"]:
        if collection["displayName"] == display_name(name):
            return list(collection["items"])
    return []


def _created_at(item: dict[str, Any]) -> float:
    return datetime.fromisoformat(item["createdOn"].replace("Z", "+00:00")).timestamp()


def _first_create_after(items: list[dict[str, Any]], moment: float) -> float | None:
    after = [stamp for item in items if (stamp := _created_at(item)) >= moment]
    return min(after) if after else None


def _counts(items: list[dict[str, Any]], name: str, rows: int) -> dict[str, int]:
    keys = Counter(item["fieldData"].get("source-key") for item in items)
    expected = set(source_keys(name, rows))
    return {
        "lost": len(expected - set(keys)),
        "duplicated": sum(n - 1 for n in keys.values() if n > 1),
        "unexpected": len(set(keys) - expected),
    }


def baseline(cluster: Cluster, rows: int) -> dict[str, Any]:
    job = write_job(cluster.folder, cluster.sandbox, "baseline", rows)
    sent = time.time()
    summary = cluster.app.send_task("flowport.run_job", args=[str(job)]).get(timeout=LIMIT)
    finished = time.time()
    first = _first_create_after(_items(cluster.sandbox, "baseline"), summary["celery"]["locked_at"])
    return {
        "exit_code": summary["exit_code"],
        "seconds": round(finished - sent, 3),
        "baseline_start_s": round(first - summary["celery"]["locked_at"], 3) if first else None,
        **_counts(_items(cluster.sandbox, "baseline"), "baseline", rows),
    }


def kill_round(cluster: Cluster, rows: int, number: int) -> dict[str, Any]:
    name = f"round{number}"
    job = write_job(cluster.folder, cluster.sandbox, name, rows)
    sent = time.time()
    result = cluster.app.send_task("flowport.run_job", args=[str(job)])
    victim = cluster.running(result.id)
    deadline = time.monotonic() + LIMIT
    while len(_items(cluster.sandbox, name)) < rows // 3:
        if result.ready():
            raise RuntimeError(f"{name} ended before a third of its rows: {result.get()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: a third of the rows never arrived")
        time.sleep(0.02)
    written_before = len(_items(cluster.sandbox, name))
    killed_at = cluster.kill(victim)
    summary = result.get(timeout=LIMIT)
    finished = time.time()
    task = summary["celery"]
    items = _items(cluster.sandbox, name)
    first = _first_create_after(items, task["locked_at"])
    cluster.start(victim)  # back for the next round, which may send its job to either
    return {
        "exit_code": summary["exit_code"],
        "killed": victim,
        "resumed_on": next(n for n, node in cluster.nodes.items() if node == task["worker"]),
        "redelivered": task["redelivered"],
        "rows_in_sandbox_at_kill": written_before,
        "seconds": round(finished - sent, 3),
        "redelivery_s": round(task["started_at"] - killed_at, 3),
        "lock_wait_s": round(task["locked_at"] - task["started_at"], 3),
        "restart_s": round(first - task["locked_at"], 3) if first else None,
        "resumed_counts": summary["collections"].get(COLLECTION, {}),
        "resumed_requests": summary["requests"],
        "resumed_rate_limited_429": summary["rate_limited"],
        **_counts(items, name, rows),
    }


def _median(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r[key] is not None]
    return round(statistics.median(values), 3) if values else None


def run(quick: bool, rows: int | None = None) -> dict[str, Any]:
    rows = rows or (1_500 if quick else 6_000)
    repeats = 1 if quick else 3
    with (
        tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp,
        # Every round's rows stay in the one site: above the plan's CMS item limit in all.
        sandbox_process(
            token=TOKEN,
            rate_limit=RATE,
            window_seconds=WINDOW,
            item_limit=(repeats + 1) * rows,
        ) as sandbox,
    ):
        cluster = Cluster(Path(tmp), sandbox)
        try:
            for name in cluster.nodes:
                cluster.start(name)
            base = baseline(cluster, rows)
            rounds = [kill_round(cluster, rows, n) for n in range(1, repeats + 1)]
        finally:
            cluster.close()
    medians = {key: _median(rounds, key) for key in ("redelivery_s", "lock_wait_s", "restart_s")}
    lost_time = [r["seconds"] - base["seconds"] for r in rounds]
    return {
        "rows": rows,
        "rate": f"{RATE} requests per {WINDOW:g} s, batches of {BATCH}",
        "baseline": base,
        "rounds": rounds,
        **medians,
        "baseline_start_s": base["baseline_start_s"],
        "time_lost_s": round(statistics.median(lost_time), 3),
        "time_lost_s_all_rounds": [round(t, 3) for t in lost_time],
        "lost": sum(r["lost"] for r in rounds),
        "duplicated": sum(r["duplicated"] for r in rounds),
        "all_exit_0": base["exit_code"] == 0 and all(r["exit_code"] == 0 for r in rounds),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    bench_main(__doc__ or "", run)
