"""Waits are bounded and said: every wait Webflow orders (Retry-After) or a failure costs
(backoff) is counted as wall time against ``[run] max_total_wait_seconds``; a long one is
logged with how long and why; past the cap the run stops in one line naming the setting, and a
Retry-After longer than what is left stops it at once. Nothing is lost: a rerun completes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr

from flowport.base.errors import RateLimited, ServerError, TransportError, classify
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.logging import NullSink
from flowport.pipeline.retry import WaitCapReached, WaitLedger, why_waiting
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, run_cli_async, write_csv
from tests.engine.conftest import posts_job_text

ROWS = [(str(n), f"Post number {n}") for n in range(300)]


def job_text(base_url: str, site_id: str, *, cap: float) -> str:
    return posts_job_text(
        base_url,
        site_id,
        destination="concurrency = 4",
        run=f"batch_size = 10\nmax_total_wait_seconds = {cap}",
    )


@pytest.fixture
def job_dir(job_dir: Path) -> Path:
    write_csv(job_dir / "posts.csv", ["id", "title"], ROWS)
    return job_dir


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_workers_waiting_out_one_window_count_it_once_and_the_cap_stops_before_waiting() -> None:
    clock = Clock()
    said: list[tuple[float, str]] = []
    ledger = WaitLedger(100.0, on_wait=lambda s, why: said.append((s, why)), clock=clock)
    # Eight workers get the same 429 within a second: one window of 60 s is waited, once said.
    for n in range(8):
        clock.now = 1000.0 + n * 0.1
        ledger.claim(60.0, "429")
    assert ledger.waited == pytest.approx(60.7)
    assert said == [(60.0, "429")]
    # Short backoffs are waited without a word.
    clock.now = 2000.0
    ledger.claim(2.0, "backing off after HTTP 500")
    assert ledger.waited == pytest.approx(62.7)
    assert len(said) == 1
    # A wait longer than what is left stops at once, and counts nothing.
    clock.now = 3000.0
    with pytest.raises(WaitCapReached) as stopped:
        ledger.claim(86_400.0, "429 Too Many Requests with Retry-After: 24.0 h")
    assert "max_total_wait_seconds = 100" in str(stopped.value)
    assert "24.0 h" in str(stopped.value)
    assert ledger.waited == pytest.approx(62.7)
    # What is left can still be waited.
    ledger.claim(37.0, "503")
    assert ledger.waited == pytest.approx(99.7)


def test_a_webflow_retry_after_is_kept_as_the_server_said_and_each_wait_says_why() -> None:
    answer = classify(429, {"Retry-After": "86400"}, {"code": "too_many_requests"})
    assert isinstance(answer.error, RateLimited)
    assert answer.error.retry_after == 86_400.0
    assert why_waiting(answer.error) == "429 Too Many Requests with Retry-After: 24.0 h"
    unavailable = classify(503, {"Retry-After": "120"}, {})
    assert isinstance(unavailable.error, ServerError)
    assert why_waiting(unavailable.error) == "HTTP 503 with Retry-After: 2 min"
    assert why_waiting(ServerError(status=500)) == "backing off after HTTP 500"
    lost = why_waiting(TransportError(message="ReadTimeout"))
    assert lost.startswith("backing off after no answer")


class ServerAsksForADayOnceWritesBegan(NullSink):
    """Turns the sandbox's fault on once the first items were written, so the run stops with
    creates in flight."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.messages: list[tuple[str, str]] = []

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        if done:
            self.sandbox.set_faults(FaultConfig(burst_429_rate=1.0, retry_after_seconds=86_400))

    def message(self, level: str, text: str, **fields: object) -> None:
        self.messages.append((level, text))


async def test_a_day_long_retry_after_stops_the_run_at_once_and_a_rerun_completes(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, cap=600))
    sink = ServerAsksForADayOnceWritesBegan(sandbox)

    started = time.monotonic()
    summary = await run_job(load_job(path), sink)
    elapsed = time.monotonic() - started

    assert elapsed < 10, "the run waited instead of stopping at once"
    assert summary.exit_code == 3
    assert summary.aborted is not None
    assert "max_total_wait_seconds = 600" in summary.aborted
    assert "Retry-After: 24.0 h" in summary.aborted
    assert ("error", f"run stopped: {summary.aborted}") in sink.messages
    assert 0 < summary.collections.get("posts", {}).get("created", 0) < len(ROWS)

    # The server lets us in again: the next run finishes the job, nothing lost or doubled.
    sandbox.set_faults(FaultConfig())
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        posts_id = log.bindings.collection_id("posts")
        assert log.counts()["posts"] == {"done": len(ROWS)}
    assert posts_id
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        names = Counter([i.field_data["name"] async for i in client.iter_items(posts_id)])
    assert sorted(names) == sorted(title for _key, title in ROWS)
    assert max(names.values()) == 1


async def test_past_the_cap_the_cli_says_each_wait_stops_in_one_line_and_reports(
    sandbox: Sandbox, job_dir: Path
) -> None:
    # Every request is answered 429 with Retry-After: 6 s; the cap allows one such wait.
    sandbox.set_faults(FaultConfig(burst_429_rate=1.0, retry_after_seconds=6))
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, cap=8))

    started = time.monotonic()
    result = await run_cli_async(
        "run", str(path), "--log-format", "json", cwd=job_dir, env={"FLOWPORT_TEST_TOKEN": TOKEN}
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 3, result.output
    assert elapsed < 8 + 6, "the run waited past its cap"
    assert "Traceback" not in result.output
    messages = [e for e in result.events() if e.get("event") == "message"]
    waits = [m for m in messages if m["text"].startswith("waiting 6 s:")]
    assert len(waits) == 1, messages
    assert "429 Too Many Requests with Retry-After: 6.0 s" in waits[0]["text"]
    assert "max_total_wait_seconds = 8" in waits[0]["text"]
    (stop,) = [m for m in messages if m["level"] == "error"]
    assert "max_total_wait_seconds = 8" in stop["text"]
    assert "run the job again" in stop["text"]
    finished = result.finished()
    assert finished["exit_code"] == 3
    assert "max_total_wait_seconds" in finished["aborted"]
