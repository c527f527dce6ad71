"""A real headless Chromium (Debian's ``chromium``), driven over its DevTools protocol with
aiohttp's websocket client: no browser-automation library, only what flowport already depends
on.

One websocket to the browser (``--remote-debugging-port=0``: Chromium picks a free port and
writes it to ``DevToolsActivePort`` in its profile folder); one page target attached to it in
flat mode, so every command names the page's session. Events (console messages, exceptions,
network requests) are kept for the test to read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = os.environ.get("FLOWPORT_TEST_CHROMIUM", "/usr/bin/chromium")
STARTUP_SECONDS = 15.0
COMMAND_SECONDS = 15.0

_FLAGS = (
    "--headless=new",
    # The profile is a throwaway folder and the page a local file; CI containers run as root,
    # where Chromium's sandbox refuses to start.
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    found = CHROMIUM if Path(CHROMIUM).is_absolute() else shutil.which(CHROMIUM)
    return found if found and os.access(found, os.X_OK) else None


@dataclass
class Page:
    """One page of the browser, and what it said while the test watched it."""

    ws: aiohttp.ClientWebSocketResponse
    session: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
                self._arrived.set()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, page: bool = True
    ) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self.ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, COMMAND_SECONDS)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    async def wait_for(self, method: str) -> dict[str, Any]:
        async def seen() -> dict[str, Any]:
            while True:
                for event in self.events:
                    if event["method"] == method:
                        return event
                self._arrived.clear()
                await self._arrived.wait()

        return await asyncio.wait_for(seen(), COMMAND_SECONDS)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("Page.loadEventFired")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and the browser's own error entries."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "assert",
                "warning",
            ):
                found.append(json.dumps(params.get("args", []))[:500])
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    async def screenshot(self, path: Path) -> Path:
        """The whole page, not only the viewport."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path


async def _devtools_port(profile: Path, browser: asyncio.subprocess.Process) -> str:
    """The browser's websocket path, once Chromium has written it."""
    marker = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    while loop.time() < deadline:
        if marker.exists():
            lines = marker.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if browser.returncode is not None:
            raise RuntimeError(f"chromium exited at start with {browser.returncode}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"chromium wrote no {marker} in {STARTUP_SECONDS:g} s")


async def _stop(browser: asyncio.subprocess.Process) -> None:
    """Chromium's own processes (renderer, GPU, zygote) are in the group it leads: all of them
    go, so none is left writing into the profile as it is removed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(browser.wait(), 5.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    await browser.wait()


async def _remove(profile: Path) -> None:
    for _ in range(50):
        try:
            await asyncio.to_thread(shutil.rmtree, profile)
        except FileNotFoundError:
            return
        except OSError:
            await asyncio.sleep(0.1)  # a process of the group not reaped yet
        else:
            return
    raise RuntimeError(f"chromium's profile {profile} could not be removed")


@contextlib.asynccontextmanager
async def chromium_page(executable: str) -> AsyncIterator[Page]:
    """A fresh headless Chromium with one blank page, closed (and its profile removed) after."""
    profile = Path(tempfile.mkdtemp(prefix="flowport-chromium-"))
    browser = await asyncio.create_subprocess_exec(
        executable,
        *_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = await _devtools_port(profile, browser)
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            page = Page(ws)
            reader = asyncio.create_task(page.read())
            try:
                target = await page.send("Target.createTarget", {"url": "about:blank"}, page=False)
                attached = await page.send(
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                    page=False,
                )
                page.session = attached["sessionId"]
                yield page
                with contextlib.suppress(Exception):
                    await page.send("Browser.close", page=False)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    finally:
        await _stop(browser)
        await _remove(profile)
