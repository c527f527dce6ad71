"""One real scenario for the run report's tests: a job run twice through the CLI into the
sandbox (the second run a nightly rerun with one record changed), with 429 bursts, an item
error whose key is a ``<script>`` tag, a warning, and images moved from an old site (one
missing there); then ``flowport report``. Run once for the folder: the tests only read its files."""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.sandbox import FaultConfig, Sandbox, SandboxConfig
from tests.conftest import TOKEN, UNLIMITED_RATE, CliResult, run_cli_async, write_csv
from tests.media.conftest import png
from tests.oldsite import running_old_site

#: A key that would run as script if the page did not escape it.
SCRIPT_KEY = '<script>document.title="pwned"</script>'
LONG_TITLE = "A title far too long for a name " * 10
ROWS = 40
#: The job's rate limit (requests per minute): low enough to draw, high enough to be quick.
RATE = 1200


@dataclass(frozen=True, slots=True)
class Scenario:
    job: Path
    first: CliResult
    second: CliResult
    report: CliResult
    #: Where ``flowport report --output`` wrote the page.
    page: Path


def _job_text(sandbox: Sandbox, old_site: str) -> str:
    return textwrap.dedent(
        f"""
        [destination]
        api = "{sandbox.base_url}"
        site_id = "{sandbox.site_id}"
        token_env = "FLOWPORT_TEST_TOKEN"
        rate_limit = {RATE}
        concurrency = 2

        [run]
        batch_size = 5

        [assets]
        enabled = true
        hosts = ["{old_site.removeprefix("http://")}"]

        [collections.posts]
        target = "Posts"
        create_missing = true
        source = {{ type = "csv", path = "posts.csv", key = "id" }}
        slug_from = "name"

        [collections.posts.fields]
        name = "title"
        summary = {{ source = "summary", transforms = [{{ truncate = 12 }}] }}
        image = "image"
        contact = "contact"

        [collections.posts.schema]
        singular_name = "Post"
        fields = {{ summary = "PlainText", image = "Image", contact = "Email" }}
        """
    )


def _rows(old_site: str, *, changed: bool) -> list[list[str]]:
    rows = []
    for n in range(ROWS):
        title = f"Post {n}" + (" (edited)" if changed and n == 3 else "")
        image = f"{old_site}/uploads/{'missing' if n == 7 else f'p{n % 3}'}.png"
        summary = "A summary longer than twelve" if n == 5 else "short"
        rows.append([f"post-{n}", title, summary, image, f"editor{n}@example.com"])
    # Its contact is no email address: an item error naming it, whose key is a script tag.
    rows.append([SCRIPT_KEY, LONG_TITLE, "short", "", "not an address"])
    return rows


async def _refuse_a_few_item_calls(sandbox: Sandbox, count: int) -> None:
    """429 for every request from the collection's first item call on, until ``count`` were
    refused: retries in the collection's chart on every run, whatever the sandbox's draws."""

    def item_calls() -> int:
        endpoints = sandbox.stats()["endpoints"]
        return sum(e["count"] for e in endpoints if "/items" in e["route"])

    def refused() -> int:
        return int(sandbox.stats()["totals"]["faults"]["burst_429"])

    # Polled: the sandbox's counters signal nothing, and the CLI runs in another process.
    before, already = item_calls(), refused()
    while item_calls() == before:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    sandbox.set_faults(FaultConfig(burst_429_rate=1.0, burst_429_length=1))
    while refused() < already + count:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    sandbox.set_faults(FaultConfig())


async def _run(folder: Path, job: Path, sandbox: Sandbox, env: dict[str, str]) -> CliResult:
    refusing = asyncio.create_task(_refuse_a_few_item_calls(sandbox, 2))
    try:
        return await run_cli_async("run", str(job), "--log-format", "json", cwd=folder, env=env)
    finally:
        refusing.cancel()
        sandbox.set_faults(FaultConfig())


async def _scenario(folder: Path) -> Scenario:
    settings: dict[str, Any] = {"tokens": (TOKEN,), "rate_limit": UNLIMITED_RATE}
    env = {"FLOWPORT_TEST_TOKEN": TOKEN}
    async with running_old_site() as old_site, Sandbox(SandboxConfig(**settings)) as sandbox:
        for n in range(3):
            old_site.files[f"/uploads/p{n}.png"] = (png(16, 16, shade=n * 40), "image/png")
        job = folder / "nightly.toml"
        job.write_text(_job_text(sandbox, old_site.base_url), encoding="utf-8")
        header = ["id", "title", "summary", "image", "contact"]
        write_csv(folder / "posts.csv", header, _rows(old_site.base_url, changed=False))
        first = await _run(folder, job, sandbox, env)
        write_csv(folder / "posts.csv", header, _rows(old_site.base_url, changed=True))
        second = await _run(folder, job, sandbox, env)
        page = folder / "out" / "report.html"
        report = await run_cli_async("report", str(job), "--output", str(page), cwd=folder, env=env)
    return Scenario(job, first, second, report, page)


@pytest.fixture(scope="package")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return asyncio.run(_scenario(tmp_path_factory.mktemp("report")))
