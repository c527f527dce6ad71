"""The site being migrated, as a real aiohttp server on 127.0.0.1 serving the test's files (a path
it does not hold answers 404 with an HTML page): for the tests of Image/File fields."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["ImageHost", "png", "running_old_site"]


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A real PNG (8-bit RGB), built by hand so the tests need no imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13 + shade) % 256 for x in range(width * 3))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 0))
        + chunk(b"IEND", b"")
    )


@dataclass
class ImageHost:
    """A real aiohttp server on 127.0.0.1 serving what the test puts in ``files``."""

    base_url: str = ""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    #: path -> statuses to answer first (e.g. [503]), before the file itself
    failures_first: dict[str, list[int]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        queued = self.failures_first.get(path)
        if queued:
            return web.Response(status=queued.pop(0), text="try later")
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        if path.startswith("/slow/"):
            # Headers, a first chunk, then silence until the test ends.
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            await response.write(b"\x89PNG\r\n\x1a\n")
            await self.release.wait()
            return response
        if path.startswith("/chunked/"):
            data, content_type = self.files[path]
            response = web.StreamResponse(headers={"Content-Type": content_type})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(data), 4096):
                await response.write(data[start : start + 4096])
            await response.write_eof()
            return response
        if path not in self.files:
            return web.Response(status=404, text="<html><body>Not found</body></html>")
        data, content_type = self.files[path]
        return web.Response(body=data, content_type=content_type)


@asynccontextmanager
async def running_old_site(*, head: bool = False) -> AsyncIterator[ImageHost]:
    """The old site, serving until the block ends; with ``head``, HEAD requests are answered
    as GETs are (without it they are refused with 405, as some servers do)."""
    host = ImageHost()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", host.handle)
    if head:
        app.router.add_route("HEAD", "/{tail:.*}", host.handle)
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
