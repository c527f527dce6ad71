"""The site being migrated, as a real aiohttp server on 127.0.0.1 serving the test's files (a path
it does not hold answers 404 with an HTML page): for the tests of Image/File fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tests.media.conftest import ImageHost

__all__ = ["ImageHost", "running_old_site"]


@asynccontextmanager
async def running_old_site() -> AsyncIterator[ImageHost]:
    host = ImageHost()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", host.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield host
    finally:
        host.release.set()
        await runner.cleanup()
