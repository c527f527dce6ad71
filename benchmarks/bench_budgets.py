"""Shared rate budgets: many jobs at once, each at its token's ceiling; jobs sharing a token
together at that token's ceiling, in one process and in three processes sharing through Redis.

    .venv/bin/python benchmarks/bench_budgets.py [--rows 2000] [--quick]

One sandbox process limits each token to 120 requests per 6 s window (Webflow's 120 per minute,
compressed tenfold, as in bench_saturation.py); every job says ``rate_limit = 120``,
``rate_window_seconds = 6``.

* **10 tokens**: 10 jobs of 2,000 items, each with a token of its own, in one
  ``flowport run FOLDER --jobs 10``; then the same as 10 ``flowport run JOB`` processes (on a
  machine whose cores are busy, one process gets one share of the CPU however many jobs it runs).
* **1 token, in one process**: 3 jobs of 2,000 items on one token, in one
  ``flowport run A B C --jobs 3`` (the process's budget registry shares the token's budget).
* **1 token, 3 processes**: the same 3 jobs as 3 ``flowport run`` processes started together,
  sharing the budget through the local Redis (``FLOWPORT_RATE_BUDGET``, a key prefix of the run's
  own, deleted after).

Batches of 10 items (``batch_size = 10``): in bulk requests of 100, 2,000 items are 20 requests,
one second at the ceiling, too short to read a pace from; in tens each job sends 200 item
requests (10 s at the ceiling) and the shared token 600.

A token's **share of its ceiling** is its pace in the steady state, as in bench_saturation.py,
read from the sandbox's own per-token figures: the token's requests (all of them, reads too;
every one is budgeted) between its first and its latest acknowledged item write, over that time,
against 120 per 6 s. Also reported: the same from the token's very first request (setup
included: the schema reads and the collection and field creation, a few requests one after the
other whose round trips a loaded machine stretches), and the setup's seconds. The 429 share is
the token's 429 answers over all its requests.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    CHILD_PYTHON,
    FLOWPORT,
    REPO,
    SandboxProcess,
    bench_main,
    scratch_dir,
    write_csv,
)

from flowport.pipeline.sandbox.process import sandbox_process

__all__ = ["RATE_LIMIT", "WINDOW_SECONDS", "run"]

RATE_LIMIT = 120
WINDOW_SECONDS = 6.0
BATCH = 10
REDIS = "redis://127.0.0.1:6379/0"
TOKEN_ENV = "FLOWPORT_BENCH_TOKEN_{n}"


def _job_text(sandbox: SandboxProcess, name: str, token_env: str, csv_path: Path) -> str:
    return f"""[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "{token_env}"
rate_limit = {RATE_LIMIT}
rate_window_seconds = {WINDOW_SECONDS}
concurrency = 4

[run]
batch_size = {BATCH}

[collections.posts]
target = "Posts {name}"
create_missing = true
external_key_field = "source-key"
source = {{ type = "csv", path = "{csv_path}", key = "id" }}
slug_from = "name"

[collections.posts.fields]
name = "title"
source-key = "id"
summary = "summary"

[collections.posts.schema]
singular_name = "Post"

[collections.posts.schema.fields]
source-key = "PlainText"
summary = "PlainText"
"""


def _write_jobs(
    folder: Path, sandbox: SandboxProcess, rows: int, token_of: list[int]
) -> list[Path]:
    """One job per entry of ``token_of``, using that token (by its place in the token file)."""
    csv_path = folder / "posts.csv"
    write_csv(csv_path, rows)
    jobs = folder / "jobs"
    jobs.mkdir()
    paths = []
    for n, token in enumerate(token_of):
        path = jobs / f"job{n:02d}.toml"
        text = _job_text(sandbox, f"{n:02d}", TOKEN_ENV.format(n=token), csv_path)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _tokens(count: int) -> list[str]:
    return [f"bench-token-{n}-{secrets.token_hex(4)}" for n in range(count)]


def _run_children(
    commands: list[list[str]], folder: Path, env: dict[str, str], timeout: float
) -> list[int]:
    """Start every command at once; their exit codes (SIGTERM past ``timeout``)."""
    children = []
    for n, command in enumerate(commands):
        out = (folder / f"child{n}.stdout").open("wb")
        err = (folder / f"child{n}.stderr").open("wb")
        children.append(
            (subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=err), out, err)
        )
    deadline = time.monotonic() + timeout
    codes = []
    for process, out, err in children:
        try:
            codes.append(process.wait(timeout=max(deadline - time.monotonic(), 1.0)))
        except subprocess.TimeoutExpired:
            process.terminate()
            codes.append(process.wait())
        out.close()
        err.close()
    return codes


def _token_figures(stats: dict[str, Any], index: int) -> dict[str, Any]:
    row = next(t for t in stats["tokens"] if t["index"] == index)
    span = row["lastSeconds"] - row["firstSeconds"]
    pace = (row["requests"] - 1) / span if span > 0 else 0.0
    steady = row["itemWrites"] or {"firstSeconds": 0.0, "lastSeconds": 0.0, "requests": 0}
    steady_span = steady["lastSeconds"] - steady["firstSeconds"]
    steady_pace = steady["requests"] / steady_span if steady_span > 0 else 0.0
    ceiling = RATE_LIMIT / WINDOW_SECONDS
    return {
        "requests": row["requests"],
        "rate_limited_429": row["rateLimited"],
        "share_429": round(row["rateLimited"] / row["requests"], 4),
        "seconds": round(span, 2),
        "requests_per_window": round(steady_pace * WINDOW_SECONDS, 1),
        "share_of_ceiling": round(steady_pace / ceiling, 3),
        "setup_seconds": round(steady["firstSeconds"] - row["firstSeconds"], 2),
        "share_of_ceiling_setup_included": round(pace / ceiling, 3),
    }


def _sandbox(folder: Path, tokens: list[str], items: int) -> Any:
    """The sandbox, knowing the jobs' tokens and one more, last, for this harness's own site
    lookup: a job's token figures hold nothing but the job's requests."""
    harness_token = f"bench-harness-{secrets.token_hex(4)}"
    token_file = folder / "tokens.txt"
    token_file.write_text("".join(f"{t}\n" for t in [*tokens, harness_token]), encoding="utf-8")
    token_file.chmod(0o600)
    return sandbox_process(
        token=harness_token,
        rate_limit=RATE_LIMIT,
        window_seconds=WINDOW_SECONDS,
        item_limit=items + 1000,
        options={"token_file": str(token_file)},
        python=CHILD_PYTHON,
        cwd=REPO,
    )


def measure_tokens(rows: int, count: int, how: str, timeout: float) -> dict[str, Any]:
    """``count`` jobs on ``count`` tokens: in one ``flowport run FOLDER --jobs count``
    (``one_process``), or as ``count`` ``flowport run JOB`` processes (``processes``)."""
    tokens = _tokens(count)
    with scratch_dir("budgets") as folder, _sandbox(folder, tokens, rows * count) as sandbox:
        paths = _write_jobs(folder, sandbox, rows, list(range(count)))
        env = {**os.environ, **{TOKEN_ENV.format(n=n): t for n, t in enumerate(tokens)}}
        commands = (
            [[FLOWPORT, "run", "jobs", "--jobs", str(count), "--log-format", "json"]]
            if how == "one_process"
            else [[FLOWPORT, "run", str(p), "--log-format", "json"] for p in paths]
        )
        began = time.perf_counter()
        codes = _run_children(commands, folder, env, timeout)
        wall = time.perf_counter() - began
        stats = sandbox.stats()
    per_job = [_token_figures(stats, n) for n in range(count)]
    code = max(codes)
    return {
        "how": how,
        "jobs": count,
        "rows_per_job": rows,
        "exit_code": code,
        "wall_seconds": round(wall, 1),
        "per_job": per_job,
        "lowest_share_of_ceiling": min(j["share_of_ceiling"] for j in per_job),
        "highest_share_429": max(j["share_429"] for j in per_job),
        "met": code == 0
        and all(j["share_of_ceiling"] >= 0.95 and j["share_429"] <= 0.01 for j in per_job),
    }


def measure_shared(rows: int, count: int, how: str, timeout: float) -> dict[str, Any]:
    """``count`` jobs on one token: in one process, or one process each sharing via Redis."""
    tokens = _tokens(1)
    prefix = f"flowport-bench-{secrets.token_hex(6)}"
    with scratch_dir("shared") as folder, _sandbox(folder, tokens, rows * count) as sandbox:
        paths = _write_jobs(folder, sandbox, rows, [0] * count)
        env = {**os.environ, TOKEN_ENV.format(n=0): tokens[0]}
        if how == "in_process":
            commands = [
                [FLOWPORT, "run", *map(str, paths), "--jobs", str(count), "--log-format", "json"]
            ]
        else:
            env["FLOWPORT_RATE_BUDGET"] = f"{REDIS}?prefix={prefix}"
            commands = [[FLOWPORT, "run", str(p), "--log-format", "json"] for p in paths]
        began = time.perf_counter()
        codes = _run_children(commands, folder, env, timeout)
        wall = time.perf_counter() - began
        stats = sandbox.stats()
    if how == "redis":
        _delete_keys(prefix)
    figures = _token_figures(stats, 0)
    return {
        "how": how,
        "jobs": count,
        "rows_per_job": rows,
        "exit_codes": codes,
        "wall_seconds": round(wall, 1),
        **figures,
        "met": all(c == 0 for c in codes)
        and figures["share_of_ceiling"] >= 0.95
        and figures["share_429"] <= 0.01,
    }


def _delete_keys(prefix: str) -> None:
    """The run's keys (they expire within seconds anyway)."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()


def run(quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    count = rows or (500 if quick else 2_000)
    timeout = 300.0 if quick else 900.0
    return {
        "rate_limit": RATE_LIMIT,
        "window_seconds": WINDOW_SECONDS,
        "batch_size": BATCH,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "cores": os.cpu_count(),
        "ten_tokens": measure_tokens(count, 10, "one_process", timeout),
        "ten_tokens_processes": measure_tokens(count, 10, "processes", timeout),
        "one_token_in_process": measure_shared(count, 3, "in_process", timeout),
        "one_token_redis": measure_shared(count, 3, "redis", timeout),
    }


def main() -> None:
    bench_main(__doc__, run)


if __name__ == "__main__":
    main()
