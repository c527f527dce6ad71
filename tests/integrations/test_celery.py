"""flowport on real Celery: two workers on the local RabbitMQ, a sandbox in its own process, three
jobs; one worker is SIGKILLed in the middle of a job and the other finishes it from the job's
checkpoint log, every item exactly once. Also: a task whose job is locked by a live run waits
for the lock (Celery retries) instead of failing, and README's beat snippet loads as written.

Each test session uses its own queue and worker names, so parallel sessions on one broker do not
take each other's tasks.
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.cli import job_lock
from flowport.pipeline.sandbox.process import SandboxProcess, sandbox_process
from tests.conftest import REPO, cli_env, unavailable
from tests.keyed_rows import KeyedJobSettings, display_name, source_keys, write_keyed_job

#: Real workers and SIGKILLs: seconds each.
pytestmark = pytest.mark.slow

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
TOKEN_ENV = "CELERY_TEST_WEBFLOW_TOKEN"
TOKEN = "tok-celery-" + uuid.uuid4().hex
ROWS = 300
#: The job paces itself to 20 requests a second with 10 items a request: about 1.5 s of creates
#: per job, long enough to kill a worker mid-job, short enough for the whole file to take ~30 s.
RATE = 20
BATCH = 10
#: A task whose job is locked tries again this often, after waiting this long for the lock (the
#: defaults, 10 s and 5 s, would slow the test).
LOCK_RETRY_SECONDS = 0.5
LOCK_GRACE_SECONDS = 1.0
JOBS = KeyedJobSettings(TOKEN_ENV, RATE, window_seconds=1.0, batch_size=BATCH, concurrency=2)

#: The workers' app: the shipped one, with short lock waits.
WORKER_APP = """\
from flowport.integrations.celery import create_app

app = create_app(lock_grace_seconds={grace}, lock_retry_seconds={retry})
"""


@dataclass
class Workers:
    folder: Path
    env: dict[str, str]
    names: dict[str, str]  # "w1" -> the node name Celery reports
    sandbox: SandboxProcess
    app: Any
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start the worker and wait until it answers a ping."""
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker_app", "worker",
                 "--concurrency", "1", "--pool", "prefork", "-n", self.names[name],
                 "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a SIGKILL takes the pool too
            )  # fmt: skip

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + 60
        nodes = {self.names[name] for name in self.processes}
        while time.monotonic() < deadline:
            dead = [name for name, process in self.processes.items() if process.poll() is not None]
            assert not dead, f"worker {dead} exited at start"
            replies = self.app.control.ping(list(nodes), timeout=0.5)
            if {node for reply in replies for node in reply} >= nodes:
                return
        raise AssertionError(f"the workers did not answer a ping in 60 s: {sorted(nodes)}")

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its pool process at once, as a lost machine."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(name)

    def send(self, job: Path) -> Any:
        return self.app.send_task("flowport.run_job", args=[str(job)])

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def _broker_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    if not _broker_reachable():
        unavailable("RabbitMQ is not listening on 127.0.0.1:5672")
    folder = tmp_path_factory.mktemp("celery")
    worker_app = WORKER_APP.format(grace=LOCK_GRACE_SECONDS, retry=LOCK_RETRY_SECONDS)
    (folder / "worker_app.py").write_text(worker_app, encoding="utf-8")
    session = uuid.uuid4().hex[:10]
    queue = f"flowport-test-{session}"
    env = cli_env(
        {
            "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)]),
            "CELERY_BROKER_URL": BROKER,
            "CELERY_RESULT_BACKEND": "rpc://",
            "FLOWPORT_CELERY_QUEUE": queue,
            TOKEN_ENV: TOKEN,
        }
    )
    from flowport.integrations.celery import create_app

    app = create_app(broker=BROKER, backend="rpc://", queue=queue)
    names = {name: f"{name}-{session}@{socket.gethostname()}" for name in ("w1", "w2")}
    # The sandbox's limit is the token's: two jobs at once stay under it.
    limit = 2 * RATE + 10
    with sandbox_process(token=TOKEN, seed=18, rate_limit=limit, window_seconds=1.0, env=env) as (
        sandbox
    ):
        running = Workers(folder, env, names, sandbox, app)
        try:
            for name in names:
                running.start(name)
            running.wait_until_ready()
            yield running
        finally:
            running.stop()
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue)
            # The result consumer's connection and the pool's are this process's to close.
            app.backend.result_consumer.stop()
            app.pool.force_close_all()
            app.close()


def write_job(folder: Path, sandbox: SandboxProcess, name: str, rows: int = ROWS) -> Path:
    return write_keyed_job(folder, sandbox.base_url, sandbox.site_id, name, rows, JOBS)


def items_by_collection(sandbox: SandboxProcess) -> dict[str, list[str]]:
    """Display name -> the source keys of its items, in the sandbox's own state."""
    return {
        collection["displayName"]: [
            item["fieldData"].get("source-key") for item in collection["items"]
        ]
        for collection in sandbox.state()["collections"]
    }


def assert_exactly_once(sandbox: SandboxProcess, name: str, rows: int = ROWS) -> None:
    keys = items_by_collection(sandbox)[display_name(name)]
    twice = {key: n for key, n in Counter(keys).items() if n > 1}
    assert not twice, f"{name}: written more than once: {twice}"
    expected = set(source_keys(name, rows))
    assert set(keys) == expected, f"{name}: missing {sorted(expected - set(keys))[:10]}"
    assert len(keys) == rows


def test_a_locked_job_is_retried_until_its_lock_is_free(workers: Workers) -> None:
    """A live run holding the lock (here, this test) makes the task wait, then run."""
    job = write_job(workers.folder, workers.sandbox, "locked", rows=20)
    with job_lock(job.parent / job.stem):
        result = workers.send(job)
        time.sleep(2 * (LOCK_GRACE_SECONDS + LOCK_RETRY_SECONDS) + 1)
        assert not result.ready(), result.result
        assert items_by_collection(workers.sandbox).get(display_name("locked"), []) == []
    summary = result.get(timeout=60)
    assert summary["exit_code"] == 0, summary
    assert summary["celery"]["retries"] >= 1, summary
    assert summary["collections"]["items"]["created"] == 20
    assert_exactly_once(workers.sandbox, "locked", rows=20)


def test_a_lock_freed_moments_after_the_task_starts_costs_no_retry(workers: Workers) -> None:
    """As a SIGKILLed run's lock looks to a task redelivered at once (the kernel frees it when
    the dead process is torn down, which can outlast the redelivery): held when the task starts,
    free a moment later. The task waits within its grace; no Celery retry."""
    job = write_job(workers.folder, workers.sandbox, "dying", rows=20)
    with job_lock(job.parent / job.stem):
        result = workers.send(job)
        _running_worker(workers, result.id)
        time.sleep(LOCK_GRACE_SECONDS / 4)
    summary = result.get(timeout=60)
    assert summary["exit_code"] == 0, summary
    assert summary["celery"]["retries"] == 0, summary
    assert_exactly_once(workers.sandbox, "dying", rows=20)


def _running_worker(workers: Workers, task_id: str) -> str:
    """The worker whose pool runs the task, once it runs (Celery's ``inspect active``)."""
    nodes = {node: name for name, node in workers.names.items()}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        active = workers.app.control.inspect(list(nodes), timeout=1.0).active() or {}
        for node, tasks in active.items():
            if any(task["id"] == task_id for task in tasks):
                return nodes[node]
    raise AssertionError(f"task {task_id} did not start in 60 s")


def test_a_bad_job_path_is_a_summary_not_a_failed_task(workers: Workers) -> None:
    relative = workers.send(Path("runs/shop.toml")).get(timeout=30)
    assert relative["exit_code"] == 2
    assert "must be absolute" in relative["aborted"]
    missing = workers.send(workers.folder / "missing.toml").get(timeout=30)
    assert missing["exit_code"] == 2
    assert "missing.toml" in missing["aborted"]


def test_a_job_redelivered_at_once_waits_out_the_dead_runs_lock(workers: Workers) -> None:
    """The other worker is idle: RabbitMQ hands it the job within milliseconds of the kill,
    while the kernel may still hold the dead run's lock. The task waits that out itself; a Celery
    retry (a countdown of 10 s by default) is not paid, and the delivery is the broker's."""
    job = write_job(workers.folder, workers.sandbox, "idle")
    result = workers.send(job)
    _, victim = _kill_mid_job(workers, {"idle": result})
    summary = result.get(timeout=60)
    workers.start(victim)  # for the next test
    assert summary["exit_code"] == 0, summary
    assert summary["celery"]["redelivered"] is True, summary
    assert summary["celery"]["retries"] == 0, summary
    assert_exactly_once(workers.sandbox, "idle")
    workers.wait_until_ready()


def test_a_job_on_a_killed_worker_is_finished_by_the_other(workers: Workers) -> None:
    """Three jobs on two workers; the worker running the first is SIGKILLed (main process and
    pool child, as a lost machine) when the sandbox has some of that job's items, and the other
    worker, once free, resumes it: every key exactly once, every summary exit 0."""
    jobs = {name: write_job(workers.folder, workers.sandbox, name) for name in ("a", "b", "c")}
    results = {name: workers.send(job) for name, job in jobs.items()}
    victim_job, victim = _kill_mid_job(workers, results)
    survivor = next(name for name in workers.names if name != victim)

    summaries = {name: result.get(timeout=90) for name, result in results.items()}
    for name, summary in summaries.items():
        assert summary["exit_code"] == 0, (name, summary, workers.log(survivor)[-3000:])
        assert_exactly_once(workers.sandbox, name)
    resumed = summaries[victim_job]
    assert resumed["celery"]["worker"] == workers.names[survivor]
    assert resumed["celery"]["redelivered"] is True
    # Resumed, not redone: the items the killed run had written are not created again.
    assert 0 < resumed["collections"]["items"].get("created", 0) < ROWS, resumed
    logs = workers.log("w1") + workers.log("w2")
    assert TOKEN not in logs
    assert workers.processes[victim].returncode == -signal.SIGKILL


def _kill_mid_job(workers: Workers, results: dict[str, Any]) -> tuple[str, str]:
    """SIGKILL a worker once the sandbox holds 40 or more items of the job it runs; (the job,
    the worker). Who runs what is asked first (Celery's ``inspect active``), so the kill itself
    waits on nothing but the sandbox's count."""
    nodes = {node: name for name, node in workers.names.items()}
    jobs = {result.id: name for name, result in results.items()}
    running: dict[str, str] = {}  # job -> worker
    deadline = time.monotonic() + 60
    while len(running) < min(len(nodes), len(results)):
        assert time.monotonic() < deadline, f"the jobs did not start in 60 s: {running}"
        active = workers.app.control.inspect(list(nodes), timeout=1.0).active() or {}
        running = {
            jobs[task["id"]]: nodes[node] for node, tasks in active.items() for task in tasks
        }
    while time.monotonic() < deadline:
        shown = items_by_collection(workers.sandbox)
        written = {job: len(shown.get(display_name(job), [])) for job in running}
        started = [job for job in running if written.get(job, 0) >= 40]
        if started:
            job = started[0]
            assert written[job] < ROWS, f"{job} finished before the kill: make jobs slower"
            workers.kill(running[job])
            return job, running[job]
        time.sleep(0.02)
    raise AssertionError("no running job reached 40 items in the sandbox within 60 s")


def readme_module(first_line: str) -> str:
    """The Python block of README's "With Celery" that starts with ``first_line``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n### With Celery\n")
    end = text.find("\n## ", start)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return str(block)


def test_the_readme_beat_module_schedules_the_task_as_written(tmp_path: Path) -> None:
    """README's nightly module, run by Celery's own beat: it loads, and beat's schedule holds each
    job at its time; each entry names the registered task with an absolute job path."""
    module = tmp_path / "flowport_nightly.py"
    module.write_text(readme_module("# flowport_nightly.py"), encoding="utf-8")
    app = runpy.run_path(str(module))["app"]
    entries = app.conf.beat_schedule
    assert entries
    for entry in entries.values():
        assert entry["task"] in app.tasks
        (job,) = entry["args"]
        assert Path(job).is_absolute()
        assert job.endswith(".toml")
    assert app.conf.task_acks_late
    assert app.conf.task_reject_on_worker_lost
    app.close()

    env = cli_env(
        {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "CELERY_BROKER_URL": BROKER}
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flowport_nightly", "beat", "--loglevel", "DEBUG",
         "--schedule", str(tmp_path / "beat-schedule")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert beat.stdout is not None
        deadline = time.monotonic() + 30
        # Beat's debug log lists the schedule it loaded, one entry a line, after it starts.
        while time.monotonic() < deadline and sum("<crontab" in x for x in lines) < len(entries):
            line = beat.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        beat.terminate()
        beat.communicate(timeout=20)
    output = "".join(lines)
    assert "beat: Starting..." in output, output
    assert "shop, nightly" in output, output
    assert "<crontab: 15 2 * * *" in output, output
