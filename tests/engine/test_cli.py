from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from flowport.pipeline import __version__
from flowport.pipeline.checkpoint import Acknowledged, CheckpointLog, ItemFailure
from flowport.pipeline.cli import CHECKPOINT_FILE, LOCK_FILE, JobLocked, job_lock
from flowport.pipeline.logging import (
    JsonLinesSink,
    NullSink,
    ProgressSink,
    RedactingFilter,
    RichProgressSink,
    clear_secrets,
    redact,
    register_secret,
)
from tests.conftest import REPO, cli_env, run_cli

JOB = textwrap.dedent(
    """
    [destination]
    api = "sandbox"

    [collections.authors]
    create_missing = true
    source = { type = "csv", path = "authors.csv", key = "id" }
    slug_from = "name"
    fields = { name = "name" }
    schema = { singular_name = "Author" }

    [collections.posts]
    create_missing = true
    source = { type = "csv", path = "posts.csv", key = "id" }
    slug_from = "name"
    fields = { name = "title", author = { source = "author_id", reference = "authors" } }
    schema = { fields = { author = { type = "Reference", collection = "authors" } } }
    """
)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "blog.toml"
    path.write_text(JOB, encoding="utf-8")
    (tmp_path / "authors.csv").write_text("id,name\na1,Zoë\n", encoding="utf-8")
    (tmp_path / "posts.csv").write_text("id,title,author_id\np1,Hello,a1\n", encoding="utf-8")
    return path


def test_version(tmp_path: Path) -> None:
    result = run_cli("version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"flowport {__version__}" in result.stdout


def test_validate_offline_accepts_a_good_job(job: Path) -> None:
    result = run_cli("validate", str(job), "--offline", cwd=job.parent)
    assert result.returncode == 0, result.stderr
    assert "job file OK" in result.stdout
    assert "authors → posts" in result.stdout
    assert not (job.parent / "blog").exists()  # validating never creates the state folder


def test_validate_reports_a_cycle(tmp_path: Path) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(
        textwrap.dedent(
            """
            [collections.pages]
            source = { type = "csv", path = "p.csv", key = "id" }
            fields = { name = "n", parent = { source = "parent", reference = "pages" } }
            """
        )
    )
    (tmp_path / "p.csv").write_text("id,n,parent\n1,Home,\n", encoding="utf-8")
    result = run_cli("validate", str(path), "--offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pages.parent" in result.stdout
    assert "second pass" in result.stdout


def test_validate_offline_opens_file_sources(job: Path) -> None:
    (job.parent / "posts.csv").unlink()
    (job.parent / "authors.csv").write_text("ident,name\na1,Zoë\n", encoding="utf-8")
    result = run_cli("validate", str(job), "--offline", cwd=job.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "problem: collections.authors: " in result.stderr
    assert "key column 'id' is not in the header" in result.stderr
    assert "problem: collections.posts: " in result.stderr
    assert "posts.csv does not exist" in result.stderr
    assert "Traceback" not in result.stderr


REMOTE = """
    api = "http://127.0.0.1:{port}/v2"
    site_id = "580e63e98c9a982ac9b8b741"
    token_env = "FLOWPORT_CLI_TEST_TOKEN"
"""


def test_validate_with_an_unreachable_api_says_so_in_one_line(
    job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # bound and released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = textwrap.dedent(REMOTE).format(port=port).strip()
    job.write_text(JOB.replace('api = "sandbox"', remote), encoding="utf-8")
    monkeypatch.setenv("FLOWPORT_CLI_TEST_TOKEN", "not-a-real-token")
    result = run_cli("validate", str(job), cwd=job.parent)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [text for text in result.stderr.splitlines() if text.strip()]
    assert line.startswith("error: cannot check the target schema")
    assert f"127.0.0.1', {port}" in line or f"127.0.0.1:{port}" in line
    assert "not-a-real-token" not in result.stdout + result.stderr


def test_validate_online_opens_every_source(job: Path) -> None:
    (job.parent / "posts.csv").write_bytes(b"")
    result = run_cli("validate", str(job), cwd=job.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "problem: collections.posts: " in result.stderr
    assert "empty" in result.stderr


def test_validate_rejects_a_bad_job_with_exit_2(job: Path) -> None:
    job.write_text(JOB.replace('path = "posts.csv"', 'paht = "posts.csv"'))
    result = run_cli("validate", str(job), "--offline", cwd=job.parent)
    assert result.returncode == 2
    assert result.stdout == ""
    assert str(job) in result.stderr
    assert "collections.posts.source.paht" in result.stderr
    assert "did you mean 'path'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_online_against_the_embedded_sandbox(job: Path) -> None:
    result = run_cli("validate", str(job), cwd=job.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "target schema OK" in result.stdout


def test_validate_online_reports_schema_problems_with_exit_2(job: Path) -> None:
    job.write_text(JOB.replace("[collections.posts]\ncreate_missing = true", "[collections.posts]"))
    result = run_cli("validate", str(job), cwd=job.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "problem: collections.posts.target" in result.stderr


def test_validate_online_checks_collections_the_job_would_create(job: Path) -> None:
    # Neither collection exists yet: their mappings are checked against what would be created.
    job.write_text(job.read_text().replace('slug_from = "name"\n', ""))
    result = run_cli("validate", str(job), cwd=job.parent)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "problem: collections.authors.fields.slug" in result.stderr
    assert "problem: collections.posts.fields.slug" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["errors", "{job}", "--format", "xml"],
        ["run", "{job}", "--log-format", "yaml"],
        ["validate"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_exit_2(job: Path, args: list[str]) -> None:
    result = run_cli(*(a.format(job=job) for a in args), cwd=job.parent)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_missing_job_file_exits_2(tmp_path: Path) -> None:
    for command in ("run", "status", "errors", "validate"):
        result = run_cli(command, str(tmp_path / "nope.toml"), cwd=tmp_path)
        assert result.returncode == 2, command
        assert "no such job file" in result.stderr


def test_status_before_any_run(job: Path) -> None:
    result = run_cli("status", str(job), cwd=job.parent)
    assert result.returncode == 0, result.stderr
    assert "no run yet" in result.stdout
    assert not (job.parent / "blog").exists()


@pytest.fixture
def populated(job: Path) -> Path:
    with CheckpointLog.open(job.parent / "blog" / CHECKPOINT_FILE) as log:
        run = log.begin_run()
        batch = log.batches.open(run, "authors", "create", 3)
        log.items.record_acknowledged(
            "authors",
            batch,
            [
                Acknowledged("a1", "wf1", "zoe", "h1", "done"),
                Acknowledged("a2", "wf2", "ana", "h2", "staged"),
            ],
        )
        log.intents.record("posts", batch, [("p9", "p9", "h")])
        log.record_failures(
            "posts",
            batch,
            [
                ItemFailure("p1", "author", "no author with key 'a404', line 3", "mapping"),
                ItemFailure(
                    "p2", None, 'title has a "quote", and a comma\nand a newline', "source"
                ),
            ],
        )
        log.finish_run(run, "partial", {"collections": {"posts": {"failed": 2}}, "exit_code": 1})
    return job


def test_status_shows_counts_and_the_last_run(populated: Path) -> None:
    result = run_cli("status", str(populated), cwd=populated.parent)
    assert result.returncode == 0, result.stderr
    lines = {}
    for line in result.stdout.splitlines():
        if line.startswith("│"):
            name, *cells = (c.strip() for c in line.strip("│").split("│"))
            lines[name] = cells
    # columns: done staged sending failed total
    assert lines["authors"] == ["1", "1", "0", "0", "2"]
    assert lines["posts"] == ["0", "0", "1", "2", "3"]
    assert "last run #1" in result.stdout
    assert "outcome partial" in result.stdout
    assert '"failed": 2' in result.stdout


def test_errors_as_csv(populated: Path) -> None:
    result = run_cli("errors", str(populated), "--format", "csv", cwd=populated.parent)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["collection"], r["key"], r["field"], r["kind"]) for r in rows] == [
        ("posts", "p1", "author", "mapping"),
        ("posts", "p2", "", "source"),
    ]
    assert rows[1]["reason"] == 'title has a "quote", and a comma\nand a newline'
    assert rows[0]["state"] == "failed"


def test_errors_as_json(populated: Path) -> None:
    result = run_cli("errors", str(populated), "--format", "json", cwd=populated.parent)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["key"] for r in rows] == ["p1", "p2"]
    assert rows[0]["reason"] == "no author with key 'a404', line 3"
    assert rows[0]["field"] == "author"


def test_errors_as_a_table(populated: Path) -> None:
    result = run_cli("errors", str(populated), cwd=populated.parent)
    assert result.returncode == 0, result.stderr
    assert "a404" in result.stdout
    assert "2 item errors" in result.stdout


def test_errors_with_no_run_is_empty(job: Path) -> None:
    result = run_cli("errors", str(job), "--format", "json", cwd=job.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_second_run_of_the_same_job_exits_3(job: Path) -> None:
    with job_lock(job.parent / "blog"):
        result = run_cli("run", str(job), cwd=job.parent)
    assert result.returncode == 3
    assert f"another run of this job is in progress (pid {os.getpid()})" in result.stderr


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with job_lock(state):
        assert (state / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(JobLocked) as caught, job_lock(state):
            pass
        assert caught.value.pid == str(os.getpid())
    with job_lock(state):
        pass


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from flowport.pipeline.cli import job_lock
    with job_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_a_killed_run_never_leaves_the_lock_stuck(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state)],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JobLocked) as caught, job_lock(state):
            pass
        assert caught.value.pid == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with job_lock(state):
        pass


def test_run_with_a_bad_job_exits_2_before_locking(job: Path) -> None:
    job.write_text(JOB.replace('api = "sandbox"', 'api = "sandbox"\nconcurrency = 0'))
    result = run_cli("run", str(job), cwd=job.parent)
    assert result.returncode == 2
    assert "destination.concurrency" in result.stderr
    assert not (job.parent / "blog").exists()


# ---- sinks and redaction -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_sink_writes_one_object_per_event() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    sink: ProgressSink = JsonLinesSink(stream, progress_interval=5.0, clock=clock)
    sink.collection_started("posts", 300)
    sink.advanced("posts", done=100)
    clock.now += 1
    sink.advanced("posts", done=50, failed=2)  # within the interval: folded into the next one
    sink.retried("posts", status=429, rate_limited=True)
    clock.now += 5
    sink.advanced("posts", unchanged=10)
    sink.message("warning", "slow source", collection="posts")
    clock.now += 1
    sink.advanced("posts", done=138)
    sink.collection_finished("posts", {"created": 288, "failed": 2, "unchanged": 10})
    out = events(stream)
    assert [e["event"] for e in out] == [
        "collection_started",
        "retried",
        "progress",
        "message",
        "progress",
        "collection_finished",
    ]
    assert all(isinstance(e["ts"], str) and str(e["ts"]).endswith("+00:00") for e in out)
    first_progress = out[2]
    assert (first_progress["done"], first_progress["failed"], first_progress["unchanged"]) == (
        150,
        2,
        10,
    )
    assert first_progress["rate_limited"] == 1
    assert out[4]["done"] == 288
    assert out[5]["counts"] == {"created": 288, "failed": 2, "unchanged": 10}
    assert out[5]["seconds"] == 7.0
    assert out[3] == {**out[3], "level": "warning", "text": "slow source", "collection": "posts"}


def test_json_lines_sink_quiet_keeps_warnings_and_totals() -> None:
    stream = io.StringIO()
    sink = JsonLinesSink(stream, quiet=True, progress_interval=0)
    sink.collection_started("posts", None)
    sink.advanced("posts", done=1)
    sink.retried("posts", status=503, rate_limited=False)
    sink.message("info", "chatty")
    sink.message("error", "bad thing")
    sink.collection_finished("posts", {"created": 1})
    assert [e["event"] for e in events(stream)] == ["message", "collection_finished"]


def test_sinks_redact_registered_secrets() -> None:
    secret = "s3cr3t-p@ss/word"
    register_secret(secret)
    try:
        stream = io.StringIO()
        sink = JsonLinesSink(stream)
        sink.message(
            "error",
            f"cannot connect to postgresql://u:{secret}@db/x",
            dsn="postgresql://u:s3cr3t-p%40ss%2Fword@db/x",
            nested={"headers": [f"Bearer {secret}"]},
        )
        text = stream.getvalue()
        assert "s3cr3t" not in text
        assert text.count("***") == 3

        console_out = io.StringIO()
        rich = RichProgressSink(Console(file=console_out, width=120), quiet=True)
        with rich:
            rich.message("error", f"token {secret} refused", where=secret)
        assert "s3cr3t" not in console_out.getvalue()
        assert "token *** refused" in console_out.getvalue()

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "auth %s", (secret,), None)
        assert RedactingFilter().filter(record)
        assert record.getMessage() == "auth ***"
    finally:
        clear_secrets()
    assert redact(f"x {secret}") == f"x {secret}"


def test_too_short_secrets_are_not_registered() -> None:
    register_secret("ab")
    register_secret("")
    register_secret(None)
    try:
        assert redact("a cab and a crab") == "a cab and a crab"
    finally:
        clear_secrets()


def test_rich_sink_draws_progress_per_collection() -> None:
    out = io.StringIO()
    sink = RichProgressSink(Console(file=out, width=140, force_terminal=True))
    with sink:
        sink.collection_started("authors", 40)
        sink.advanced("authors", done=38, failed=2)
        sink.retried("authors", status=429, rate_limited=True)
        sink.collection_finished("authors", {"created": 38, "failed": 2})
        sink.collection_started("posts", None)
        sink.advanced("posts", done=5)
        sink.message("info", "creating field author in posts")
        sink.collection_finished("posts", {"created": 5})
    text = out.getvalue()
    assert "authors" in text
    assert "40/40" in text
    assert "2 failed" in text
    assert "1 retries (1×429)" in text
    assert "creating field author in posts" in text
    assert isinstance(NullSink(), ProgressSink)


def test_the_demo_job_validates_offline(tmp_path: Path) -> None:
    shutil.copy(REPO / "runs" / "demo.toml", tmp_path / "demo.toml")
    shutil.copytree(REPO / "runs" / "demo-data", tmp_path / "demo-data")
    result = run_cli("validate", str(tmp_path / "demo.toml"), "--offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "authors → posts" in result.stdout
