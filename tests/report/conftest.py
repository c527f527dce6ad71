"""One real scenario for the run report's tests: a job run twice through the CLI into the
sandbox (the second run a nightly rerun with one record changed), with 429s, an item
error whose key is a ``<script>`` tag, a warning, and images moved from an old site (one
missing there); then ``flowport report``. Run once for the folder: the tests only read its files."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from flowport.pipeline.sandbox import Sandbox, SandboxConfig
from tests.conftest import TOKEN, UNLIMITED_RATE, CliResult, run_cli_async, write_csv
from tests.oldsite import png, running_old_site

#: A key that would run as script if the page did not escape it.
SCRIPT_KEY = '<script>document.title="pwned"</script>'
ROWS = 40
#: The job's rate limit (requests per minute): low enough to draw, high enough to be quick.
RATE = 1200
#: Item writes answered 429 in each run.
REFUSALS = 2


@dataclass(frozen=True, slots=True)
class Scenario:
    job: Path
    first: CliResult
    second: CliResult
    report: CliResult
    #: Where ``flowport report --output`` wrote the page.
    page: Path


def _job_text(api: str, site_id: str, old_site: str) -> str:
    return textwrap.dedent(
        f"""
        [destination]
        api = "{api}"
        site_id = "{site_id}"
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
        image = "image"
        contact = "contact"

        [collections.posts.schema]
        singular_name = "Post"
        fields = {{ image = "Image", contact = "Email" }}
        """
    )


def _rows(old_site: str, *, changed: bool) -> list[list[str]]:
    rows = []
    for n in range(ROWS):
        title = f"Post {n}" + (" (edited)" if changed and n == 3 else "")
        image = f"{old_site}/uploads/{'missing' if n == 7 else f'p{n % 3}'}.png"
        rows.append([f"post-{n}", title, image, f"editor{n}@example.com"])
    # Its contact is no email address: an item error naming it, whose key is a script tag.
    rows.append([SCRIPT_KEY, "A key with a script tag", "", "not an address"])
    return rows


class RefusingProxy:
    """A real HTTP proxy in front of the sandbox that answers 429 (``Retry-After: 0``) to the
    first ``refusals`` item writes after each :meth:`arm`, and passes everything else: retries
    in the collection's chart on every run, at the same place whatever the timing."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.left = 0
        self.url = ""

    def arm(self, refusals: int) -> None:
        self.left = refusals

    async def handle(self, request: web.Request) -> web.StreamResponse:
        writes = request.method in ("POST", "PATCH") and request.path.endswith("/items/live")
        if writes and self.left > 0:
            self.left -= 1
            return web.json_response(
                {"code": "too_many_requests", "message": "Too many requests"},
                status=429,
                headers={"Retry-After": "0"},
            )
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                f"{self.upstream}{request.path_qs}",
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as answer,
        ):
            body = await answer.read()
            kept = ("Content-Type", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining")
            headers = {k: answer.headers[k] for k in kept if k in answer.headers}
            return web.Response(status=answer.status, body=body, headers=headers)


@asynccontextmanager
async def refusing_proxy(upstream: str) -> AsyncIterator[RefusingProxy]:
    proxy = RefusingProxy(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield proxy
    finally:
        await runner.cleanup()


async def _scenario(folder: Path) -> Scenario:
    settings: dict[str, Any] = {"tokens": (TOKEN,), "rate_limit": UNLIMITED_RATE}
    env = {"FLOWPORT_TEST_TOKEN": TOKEN}
    async with (
        running_old_site() as old_site,
        Sandbox(SandboxConfig(**settings)) as sandbox,
        refusing_proxy(sandbox.root_url) as proxy,
    ):
        for n in range(3):
            old_site.files[f"/uploads/p{n}.png"] = (png(16, 16, shade=n * 40), "image/png")
        job = folder / "nightly.toml"
        job.write_text(_job_text(proxy.url + "/v2", sandbox.site_id, old_site.base_url))
        header = ["id", "title", "image", "contact"]
        runs = []
        for changed in (False, True):
            write_csv(folder / "posts.csv", header, _rows(old_site.base_url, changed=changed))
            proxy.arm(REFUSALS)
            runs.append(
                await run_cli_async("run", str(job), "--log-format", "json", cwd=folder, env=env)
            )
        page = folder / "out" / "report.html"
        report = await run_cli_async("report", str(job), "--output", str(page), cwd=folder, env=env)
    return Scenario(job, runs[0], runs[1], report, page)


@pytest.fixture(scope="package")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return asyncio.run(_scenario(tmp_path_factory.mktemp("report")))
