"""How many item writes per second the sandbox takes: in its core, and over HTTP from a client.

    .venv/bin/python benchmarks/bench_sandbox.py [--items 20000] [--concurrency 4] [--journal]

The HTTP figure runs the server as a subprocess (``python -m flowport.pipeline.sandbox``, one
process, so one core) and sends bulk creates of 100 items with aiohttp from this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from flowport.pipeline.sandbox import SandboxConfig, SandboxCore

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
BATCH = 100
FIELDS = [
    {"type": "PlainText", "displayName": "Summary"},
    {"type": "RichText", "displayName": "Body"},
    {"type": "Number", "displayName": "Score"},
    {"type": "Switch", "displayName": "Featured"},
    {"type": "DateTime", "displayName": "Published At"},
]


def batch_of(start: int) -> list[dict[str, Any]]:
    return [
        {
            "fieldData": {
                "name": f"Item {n}",
                "slug": f"item-{n}",
                "summary": "A short summary of the item " * 3,
                "body": "<p>" + "Some rich text body. " * 20 + "</p>",
                "score": n * 1.5,
                "featured": n % 2 == 0,
                "published-at": "2024-05-01T10:00:00Z",
            }
        }
        for n in range(start, start + BATCH)
    ]


def bench_core(items: int) -> float:
    core = SandboxCore(SandboxConfig(item_limit=items + BATCH))
    collection = core.create_collection(
        core.site_id, {"displayName": "Posts", "singularName": "Post", "fields": FIELDS}
    )
    batches = [{"items": batch_of(start)} for start in range(0, items, BATCH)]
    began = time.perf_counter()
    for body in batches:
        core.create_items(collection["id"], body)
    return items / (time.perf_counter() - began)


def bench_http(items: int, concurrency: int, journal: Path | None) -> float:
    env = {**os.environ, "FLOWPORT_SANDBOX_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "flowport.pipeline.sandbox", "--port", "0",
        "--rate-limit", "100000000", "--item-limit", str(items + BATCH),
    ]  # fmt: skip
    if journal is not None:
        command += ["--state", str(journal)]
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            base = server.stdout.readline().strip()
            return asyncio.run(drive(base, items, concurrency))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


async def drive(base: str, items: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as client:
        async with client.get(f"{base}/sites") as response:
            site_id = (await response.json())["sites"][0]["id"]
        body = {"displayName": "Posts", "singularName": "Post", "fields": FIELDS}
        async with client.post(f"{base}/sites/{site_id}/collections", json=body) as response:
            collection_id = (await response.json())["id"]
        url = f"{base}/collections/{collection_id}/items"
        queue: asyncio.Queue[int] = asyncio.Queue()
        for start in range(0, items, BATCH):
            queue.put_nowait(start)

        async def worker() -> None:
            while not queue.empty():
                start = queue.get_nowait()
                async with client.post(url, json={"items": batch_of(start)}) as answer:
                    if answer.status != 202:
                        raise RuntimeError(f"{answer.status}: {await answer.text()}")
                    await answer.read()

        began = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        return items / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--journal", action="store_true", help="also measure with --state")
    args = parser.parse_args()
    items = args.items - args.items % BATCH
    print(f"core, no HTTP:            {bench_core(items):>10,.0f} items/s ({items} items)")
    rate = bench_http(items, args.concurrency, None)
    print(f"HTTP, bulk {BATCH}, c={args.concurrency}:     {rate:>10,.0f} items/s ({items} items)")
    if args.journal:
        with tempfile.TemporaryDirectory() as folder:
            journal = Path(folder) / "state.jsonl"
            rate = bench_http(items, args.concurrency, journal)
        print(f"HTTP + journal:           {rate:>10,.0f} items/s ({items} items)")


if __name__ == "__main__":
    main()
