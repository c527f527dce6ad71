"""Small things users met on their first runs, each reproduced as a new user would: the live
display's publish phase, setup steps and rates, wording slips, an API URL that answers HTML,
an unprotected token file, out-of-range values."""

from __future__ import annotations

import asyncio
import io
import re
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from aiohttp import web
from rich.console import Console

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.logging import (
    CallbackSink,
    PrefixedSink,
    ProgressEvent,
    ProgressTally,
    RichProgressSink,
)
from flowport.pipeline.runner import run_job
from tests.conftest import run_cli, run_cli_async

JOB = textwrap.dedent(
    """
    [destination]
    api = "sandbox"
    rate_limit = 100000

    [run]
    mode = "{mode}"

    [collections.posts]
    create_missing = true
    source = {{ type = "csv", path = "posts.csv", key = "id" }}
    slug_from = "name"
    fields = {{ name = "title" }}
    schema = {{ singular_name = "Post"{fields} }}
    """
)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "posts.csv").write_text(
        "id,title\n" + "".join(f"p{n},Post {n}\n" for n in range(10)), encoding="utf-8"
    )
    path = tmp_path / "blog.toml"
    path.write_text(JOB.format(mode="live", fields=""), encoding="utf-8")
    return path


def live_display() -> tuple[RichProgressSink, io.StringIO]:
    out = io.StringIO()
    return RichProgressSink(Console(file=out, width=160, force_terminal=True)), out


async def test_the_live_display_shows_the_publish_phase(job: Path) -> None:
    await anyio.Path(job).write_text(JOB.format(mode="staged", fields=""), encoding="utf-8")
    sink, out = live_display()
    with sink:
        summary = await run_job(load_job(job), sink)
    assert summary.collections["posts"]["published"] == 10
    assert "posts (publishing)" in out.getvalue()


def test_a_collection_whose_every_item_failed_has_no_rate() -> None:
    # Every record failed in its mapping a millisecond after the start: no request was sent,
    # and "1,105,078/min" was shown.
    sink, out = live_display()
    with sink:
        sink.collection_started("posts", 300)
        sink.advanced("posts", failed=300)
        sink.collection_finished("posts", {"failed": 300})
    text = out.getvalue()
    assert "300 failed" in text
    assert "/min" not in text


def test_the_rate_counts_written_items_over_the_last_minute_once_seconds_have_passed() -> None:
    now = [1000.0]
    tally = ProgressTally("posts", 10_000, clock=lambda: now[0])
    tally.advance(failed=500)  # local failures cost no time in Webflow: not a rate
    now[0] += 1
    tally.advance(done=100)
    assert tally.items_per_minute(now[0]) is None  # a second says nothing yet
    for _ in range(120):  # two minutes at 100 items a second
        now[0] += 1
        tally.advance(done=100)
    assert tally.items_per_minute(now[0]) == pytest.approx(6000, rel=0.02)
    now[0] += 30  # then half a minute of waiting (a 429's Retry-After): the rate halves
    assert tally.items_per_minute(now[0]) == pytest.approx(3000, rel=0.05)
    now[0] += 60  # and a whole minute of it: nothing was written in the last minute
    assert tally.items_per_minute(now[0]) == 0


def test_jobs_sharing_one_display_count_their_own_requests() -> None:
    events: list[ProgressEvent] = []
    shared = CallbackSink(events.append, interval=0)
    first, second = PrefixedSink(shared, "shop"), PrefixedSink(shared, "blog")
    first.count_requests(lambda collection: {"posts": 3}.get(collection, 0))
    second.count_requests(lambda collection: {"posts": 5}.get(collection, 0))
    first.collection_started("posts", None)
    second.collection_started("posts", None)
    second.phase("posts", "publish", done=0, total=2)
    assert [(e.collection, e.phase, e.requests) for e in events] == [
        ("shop: posts", "read", 3),
        ("blog: posts", "read", 5),
        ("blog: posts", "publish", 5),
    ]


async def test_setup_shows_progress_instead_of_a_line_per_field(job: Path) -> None:
    await run_job(load_job(job))  # the collection exists, with no field of its own
    fields = ", ".join(f'"extra-{n}" = "PlainText"' for n in range(15))
    await anyio.Path(job).write_text(
        JOB.format(mode="live", fields=f", fields = {{ {fields} }}"), encoding="utf-8"
    )
    sink, out = live_display()
    with sink:
        summary = await run_job(load_job(job), sink)
    assert summary.exit_code == 0, summary.as_dict()
    text = out.getvalue()
    assert "creating field " not in text
    assert text.count("creating 15 fields in posts") == 1
    assert "posts (setting up)" in text


def test_plan_is_titled_a_plan(job: Path) -> None:
    result = run_cli("plan", str(job), cwd=job.parent)
    assert result.returncode == 0, result.stderr
    assert "plan of blog" in result.stdout
    assert "run of" not in result.stdout


def test_status_of_a_run_that_did_not_finish(job: Path) -> None:
    (job.parent / "blog").mkdir()
    log = CheckpointLog.open(job.parent / "blog" / "checkpoint.sqlite")
    log.begin_run()
    log.close()
    result = run_cli("status", str(job), cwd=job.parent)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert re.search(r"last run #1: started \S+, not finished \(running, or killed\)", said)
    assert "finished not finished" not in said


def test_validate_says_ok_only_once_the_checks_passed(job: Path) -> None:
    (job.parent / "posts.csv").unlink()
    result = run_cli("validate", str(job), "--offline", cwd=job.parent)
    assert result.returncode == 2, result.output
    assert "OK" not in result.stdout
    assert "posts.csv does not exist" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "1 problem found; nothing was written"

    online = run_cli("validate", str(job), cwd=job.parent)
    assert online.returncode == 2, online.output
    assert "OK" not in online.stdout


async def html_404(request: web.Request) -> web.Response:
    return web.Response(
        status=404,
        text="<!DOCTYPE html>\n<html>\n<head><title>404 Not Found</title></head>\n"
        "<body>\n<h1>Not Found</h1>\n<p>The requested URL was not found.</p>\n</body>\n</html>\n",
        content_type="text/html",
    )


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    """A plain web server where the API is not: every path answers an HTML 404 page."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html_404)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_validate_against_a_url_that_is_not_the_api_says_so_in_one_line(
    job: Path, web_server: str
) -> None:
    remote = (
        f'api = "{web_server}/v2"\nsite_id = "580e63e98c9a982ac9b8b741"\n'
        'token_env = "FLOWPORT_SMALL_TOKEN"'
    )
    text = JOB.format(mode="live", fields="").replace('api = "sandbox"', remote)
    await anyio.Path(job).write_text(text, encoding="utf-8")
    result = await run_cli_async(
        "validate", str(job), cwd=job.parent, env={"FLOWPORT_SMALL_TOKEN": "not-a-real-token"}
    )
    assert result.returncode == 3, result.output
    [line] = [text for text in result.stderr.splitlines() if text.strip()]
    assert line.startswith("error: cannot check the target schema: HTTP 404: an HTML page")
    assert "'404 Not Found'" in line
    assert "destination.api" in line


def test_a_token_file_others_can_read_is_warned_about(job: Path) -> None:
    token = job.parent / "webflow.token"
    token.write_text("a-token-for-the-sandbox\n", encoding="utf-8")
    job.write_text(
        job.read_text().replace('api = "sandbox"', 'api = "sandbox"\ntoken_file = "webflow.token"'),
        encoding="utf-8",
    )
    token.chmod(0o644)
    checked = run_cli("validate", str(job), cwd=job.parent)
    assert checked.returncode == 0, checked.output
    said = " ".join(checked.stderr.split())
    assert (
        f"warning: the token file {token} can be read by others than its owner (mode 0644)" in said
    )
    assert f"chmod 600 {token}" in said
    ran = run_cli("run", str(job), "--log-format", "json", cwd=job.parent)
    assert ran.returncode == 0, ran.output
    warned = [e for e in ran.events() if e.get("level") == "warning"]
    assert any("can be read by others" in e["text"] for e in warned), ran.stdout

    token.chmod(0o600)
    quiet = run_cli("validate", str(job), cwd=job.parent)
    assert quiet.returncode == 0, quiet.output
    assert "token file" not in quiet.stderr


@pytest.mark.parametrize(
    ("setting", "fix"),
    [
        ("concurrency = 100", "set concurrency to a value from 1 to 64"),
        ("timeout_seconds = 0", "set timeout_seconds to a value more than 0 and at most 3,600"),
    ],
)
def test_an_out_of_range_value_gets_a_fix_line(job: Path, setting: str, fix: str) -> None:
    job.write_text(
        job.read_text().replace('api = "sandbox"', f'api = "sandbox"\n{setting}'), encoding="utf-8"
    )
    result = run_cli("validate", str(job), "--offline", cwd=job.parent)
    assert result.returncode == 2, result.output
    assert f"\n  fix: {fix}" in result.stderr


async def test_validate_against_an_address_that_never_answers_waits_the_jobs_timeout(
    job: Path,
) -> None:
    # A firewall that drops packets, a host that accepts and never answers: validate waited
    # its client's default minute whatever the job's timeout_seconds said.
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    remote = (
        f'api = "http://127.0.0.1:{port}/v2"\nsite_id = "580e63e98c9a982ac9b8b741"\n'
        'token_env = "FLOWPORT_SMALL_TOKEN"\ntimeout_seconds = 1'
    )
    text = JOB.format(mode="live", fields="").replace('api = "sandbox"', remote)
    await anyio.Path(job).write_text(text, encoding="utf-8")
    started = time.monotonic()
    async with server:
        result = await run_cli_async(
            "validate", str(job), cwd=job.parent, env={"FLOWPORT_SMALL_TOKEN": "a-token"}
        )
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.output
    assert elapsed < 30, f"validate waited {elapsed:.0f} s"
    assert f"checking the target schema at http://127.0.0.1:{port}/v2" in result.stdout
    [line] = [text for text in result.stderr.splitlines() if text.strip()]
    assert line == "error: cannot check the target schema: no HTTP answer: no answer (TimeoutError)"
