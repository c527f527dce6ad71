"""One rate budget per token: jobs of one process share it, processes share it through Redis
(README, "Shared rate budgets"); and several jobs in one ``flowport run`` ("Many jobs at once").

The sandbox allows each token 36 requests per 1 s window while every job says 30: a margin for
a loaded machine's scheduling jitter, and still two jobs pacing alone (about 59 a second
together) are answered 429 within the first window.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.sharedbudget import RedisRateBudget, budget_id
from tests.conftest import (
    TOKEN,
    SandboxStarter,
    cli_command,
    cli_env,
    run_cli,
    run_cli_async,
    unavailable,
)

SERVER_LIMIT = 36
JOB_LIMIT = 30
WINDOW = 1.0
ITEMS = 60
REDIS = "redis://127.0.0.1:6379/0"


def write_job(
    folder: Path, name: str, sandbox: Sandbox, *, budget: str | None = None, items: int = ITEMS
) -> Path:
    rows = "".join(f"{n},{name} post {n}\n" for n in range(items))
    (folder / f"{name}.csv").write_text("id,title\n" + rows, encoding="utf-8")
    budget_line = f'rate_budget = "{budget}"' if budget else ""
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [destination]
            api = "{sandbox.base_url}"
            site_id = "{sandbox.site_id}"
            token_env = "FLOWPORT_TEST_TOKEN"
            rate_limit = {JOB_LIMIT}
            rate_window_seconds = {WINDOW}

            [run]
            batch_size = 1
            {budget_line}

            [collections.posts]
            target = "Posts {name}"
            create_missing = true
            source = {{ type = "csv", path = "{name}.csv", key = "id" }}
            slug_from = "name"
            fields = {{ name = "title" }}
            schema = {{ singular_name = "Post" }}
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def limited(start_sandbox: SandboxStarter) -> Sandbox:
    return await start_sandbox(rate_limit=SERVER_LIMIT, window_seconds=WINDOW, item_limit=10_000)


def token_figures(sandbox: Sandbox) -> dict[str, Any]:
    (figures,) = sandbox.stats()["tokens"]
    return figures


def assert_within_the_ceiling(sandbox: Sandbox) -> None:
    figures = token_figures(sandbox)
    assert figures["requests"] >= 2 * ITEMS
    assert figures["rateLimited"] == 0
    pace = (figures["requests"] - 1) / (figures["lastSeconds"] - figures["firstSeconds"])
    # The budget paces at 0.985 of the limit; the ends of the span carry scheduling jitter.
    assert pace <= JOB_LIMIT * 1.05


async def test_two_jobs_in_one_process_sharing_a_token_stay_under_its_ceiling(
    limited: Sandbox, job_dir: Path
) -> None:
    jobs = [load_job(write_job(job_dir, name, limited)) for name in ("a", "b")]
    summaries: list[Any] = []

    async def run(job: Any) -> None:
        summaries.append(await run_job(job))

    async with anyio.create_task_group() as group:
        for job in jobs:
            group.start_soon(run, job)
    assert [s.exit_code for s in summaries] == [0, 0]
    assert_within_the_ceiling(limited)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The local Redis, under a key prefix of this test's own, its keys deleted after."""
    import redis.asyncio

    prefix = f"flowport-test-{secrets.token_hex(6)}"
    client = redis.asyncio.Redis.from_url(REDIS)
    try:
        await client.ping()
    except (OSError, redis.exceptions.RedisError):
        await client.aclose()
        unavailable("Redis is not running on 127.0.0.1:6379")
    try:
        yield f"{REDIS}?prefix={prefix}"
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


async def run_two_processes(
    folder: Path, sandbox: Sandbox, budget: str, items: int = ITEMS
) -> list[int]:
    paths = [write_job(folder, name, sandbox, budget=budget, items=items) for name in ("a", "b")]
    codes: list[int] = []

    async def run(path: Path) -> None:
        result = await run_cli_async("run", str(path), "--log-format", "json", cwd=folder)
        codes.append(result.returncode)

    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(run, path)
    return codes


@pytest.mark.slow
async def test_two_processes_sharing_a_token_through_redis_stay_under_its_ceiling(
    limited: Sandbox, job_dir: Path, redis_url: str
) -> None:
    assert await run_two_processes(job_dir, limited, redis_url) == [0, 0]
    assert_within_the_ceiling(limited)


@pytest.mark.slow
async def test_two_processes_each_with_its_own_budget_are_answered_429(
    limited: Sandbox, job_dir: Path
) -> None:
    # The control for the test above: the same jobs, each process pacing alone; longer, so
    # that they overlap however far apart the two interpreters finish starting.
    assert await run_two_processes(job_dir, limited, "process", items=2 * ITEMS) == [0, 0]
    assert token_figures(limited)["rateLimited"] > 0


async def test_a_pause_one_process_meets_holds_every_process(redis_url: str) -> None:
    import redis.asyncio

    url, _, prefix = redis_url.partition("?prefix=")
    clients = [redis.asyncio.Redis.from_url(url) for _ in range(2)]
    meets, waits = (
        RedisRateBudget(client, f"{prefix}:pause", 1_000, 60.0, where="test") for client in clients
    )
    let_in: list[float] = []

    async def other_process() -> None:
        await waits.acquire()
        let_in.append(anyio.current_time())

    try:
        began = anyio.current_time()
        meets.pause_for(0.4)  # a 429 with Retry-After: 0.4, in one process
        async with anyio.create_task_group() as group:
            group.start_soon(meets.acquire)  # its next request, which tells Redis
            await anyio.sleep(0.1)
            group.start_soon(other_process)
        assert let_in[0] - began >= 0.35
    finally:
        for client in clients:
            await client.aclose()


def test_a_budget_is_named_by_a_keyed_hash_never_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWPORT_RATE_BUDGET_SECRET", raising=False)
    name = budget_id("https://api.webflow.com/v2", SecretStr(TOKEN))
    assert TOKEN not in name
    assert name == budget_id("https://api.webflow.com/v2/", SecretStr(TOKEN))
    assert name != budget_id("https://api.webflow.com/v2", SecretStr(TOKEN + "x"))
    monkeypatch.setenv("FLOWPORT_RATE_BUDGET_SECRET", "the agency's own")
    assert name != budget_id("https://api.webflow.com/v2", SecretStr(TOKEN))


def test_a_bad_budget_backend_is_a_bad_job(job_dir: Path) -> None:
    path = job_dir / "job.toml"
    path.write_text(
        '[run]\nrate_budget = "memcached://x"\n[collections.a]\n'
        'source = { type = "csv", path = "a.csv", key = "id" }\nfields = { name = "n" }\n',
        encoding="utf-8",
    )
    result = run_cli("run", str(path), cwd=job_dir)
    assert result.returncode == 2
    assert "run.rate_budget" in result.stderr
    assert "Traceback" not in result.stderr


async def test_an_unreachable_redis_stops_the_run_with_a_line_and_exit_3(
    limited: Sandbox, job_dir: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    budget = f"redis://:a-redis-password@127.0.0.1:{port}/0"
    path = write_job(job_dir, "a", limited, budget=budget)
    result = await run_cli_async("run", str(path), "--log-format", "json", cwd=job_dir)
    assert result.returncode == 3
    finished = json.loads(result.stdout.splitlines()[-1])
    assert f"Redis at redis://127.0.0.1:{port}/0 is unreachable" in finished["aborted"]
    assert "a-redis-password" not in result.stdout + result.stderr
    assert token_figures_or_none(limited) is None  # nothing was sent without the budget


def token_figures_or_none(sandbox: Sandbox) -> dict[str, Any] | None:
    rows = sandbox.stats()["tokens"]
    return rows[0] if rows else None


# ---- several jobs in one run --------------------------------------------------------------

EMBEDDED_JOB = """
[destination]
api = "sandbox"

[collections.posts]
create_missing = true
source = {{ type = "csv", path = "{csv}", key = "id" }}
slug_from = "name"
fields = {{ name = "title" }}
schema = {{ singular_name = "Post" }}
"""


def test_several_job_files_give_a_summary_each_and_the_worst_exit_code(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (tmp_path / "good.csv").write_text("id,title\n1,One\n2,Two\n", encoding="utf-8")
    # An item with no name fails; its job exits 1.
    (tmp_path / "nameless.csv").write_text("id,title\n1,One\n2,\n", encoding="utf-8")
    for name, csv in (("good", "good.csv"), ("failing", "nameless.csv")):
        text = EMBEDDED_JOB.format(csv=tmp_path / csv)
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    (folder / "broken.toml").write_text('[destination]\napi = "nowhere"\n', encoding="utf-8")

    result = run_cli("run", str(folder), "--jobs", "2", "--log-format", "json", cwd=tmp_path)

    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = {e["job"]: e for e in events if e["event"] == "run_finished"}
    assert {job: e["exit_code"] for job, e in finished.items()} == {
        "broken": 2,
        "failing": 1,
        "good": 0,
    }
    assert finished["good"]["collections"] == {"posts": {"created": 2}}
    assert finished["failing"]["collections"]["posts"]["failed"] == 1
    assert "destination.api" in finished["broken"]["aborted"]
    # Every event but the lot's last line is named by its job.
    assert all("job" in e for e in events[:-1])
    assert events[-1]["event"] == "runs_finished"
    assert events[-1]["exit_code"] == 2
    assert result.returncode == 2
    assert "broken: error:" in result.stderr


def test_several_job_files_on_a_terminal_print_a_summary_each(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text("id,title\n1,One\n", encoding="utf-8")
    paths = []
    for name in ("first", "second"):
        path = tmp_path / f"{name}.toml"
        path.write_text(EMBEDDED_JOB.format(csv=tmp_path / "good.csv"), encoding="utf-8")
        paths.append(str(path))

    result = run_cli("run", *paths, "--log-format", "text", cwd=tmp_path)

    assert result.returncode == 0
    assert "run of first" in result.stdout
    assert "run of second" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "2 jobs: 2 exit 0; exit code 0"


def test_a_job_named_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(EMBEDDED_JOB.format(csv=tmp_path / "x.csv"), encoding="utf-8")
    result = run_cli("run", str(path), str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "named twice" in result.stderr


SLOW_JOB = """
[destination]
api = "sandbox"
rate_limit = 600
rate_window_seconds = 60
concurrency = 1

[run]
batch_size = 5

[collections.posts]
create_missing = true
source = { type = "csv", path = "posts.csv", key = "id" }
slug_from = "name"
fields = { name = "title" }
schema = { singular_name = "Post" }
"""


@pytest.mark.slow
def test_sigterm_stops_every_job_and_each_still_gets_its_summary(tmp_path: Path) -> None:
    rows = "".join(f"p{n},Post number {n}\n" for n in range(400))
    (tmp_path / "posts.csv").write_text("id,title\n" + rows, encoding="utf-8")
    paths = []
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.toml").write_text(SLOW_JOB, encoding="utf-8")
        paths.append(str(tmp_path / f"{name}.toml"))
    process = subprocess.Popen(
        cli_command("run", *paths, "--jobs", "2", "--log-format", "json"),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    writing: set[str] = set()
    while writing != {"a", "b"}:  # both running jobs are mid-way; c waits its turn
        event = json.loads(process.stdout.readline())
        if event["event"] == "progress" and event["done"] > 0:
            writing.add(event["job"])
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)

    events = [json.loads(line) for line in out.splitlines()]
    finished = {e["job"]: e for e in events if e["event"] == "run_finished"}
    assert finished["a"]["aborted"].startswith("SIGTERM: stopped")
    assert finished["a"]["collections"]["posts"]["created"] > 0
    assert finished["b"]["aborted"].startswith("SIGTERM: stopped")
    assert finished["c"]["aborted"] == "SIGTERM: not started"
    assert events[-1] == {**events[-1], "event": "runs_finished", "exit_code": 3}
    assert process.returncode == 3
    assert "Traceback" not in err
