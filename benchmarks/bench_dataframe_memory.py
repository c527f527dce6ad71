"""Memory of a DataFrame source: the frame's own size against what a run adds to it.

    .venv/bin/python benchmarks/bench_dataframe_memory.py [--rows 100000 1000000] [--write]

Each size runs in a child process of its own: it builds a frame of ``rows`` products (text key,
title, float price with NaNs, bool, tz-aware datetime) and imports the engine, measures its RSS
(``before``), then runs ``flowport.plan(job, sources=...)`` (read, map and diff every row; the
embedded sandbox, nothing written) while a thread samples RSS every 20 ms (``peak``). With
``--write`` it runs ``flowport.run`` instead, into a sandbox in its own process (no rate limit,
no item limit), so the writer and the checkpoint log are included. ``extra`` = peak - before:
what the run costs beyond the frame, which should not grow with the frame.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BENCH_TOKEN_ENV, CHILD_PYTHON, REPO, TOKEN, sandbox_process, scratch_dir

CHILD = r"""
import asyncio, gc, json, os, sys, threading, time
import numpy as np
import pandas as pd
import flowport
# Loaded before `before` is taken, so `extra` is the run's data and not the engine's code.
import flowport.connectors.dataframe, flowport.pipeline.api, flowport.pipeline.sandbox

rows, job_path, write = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "write"
page = os.sysconf("SC_PAGE_SIZE")

def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

numbers = np.arange(rows)
frame = pd.DataFrame(
    {
        "sku": [f"SKU-{n:07d}" for n in range(rows)],
        "title": [f"Product number {n}" for n in range(rows)],
        "price": np.where(numbers % 10 == 0, np.nan, numbers * 0.25),
        "in_stock": numbers % 3 == 0,
        "released": pd.date_range("2020-01-01", periods=rows, freq="min", tz="UTC"),
    }
)
del numbers
gc.collect()
before = rss()
peak = before
running = True

def sample() -> None:
    global peak
    while running:
        peak = max(peak, rss())
        time.sleep(0.02)

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.perf_counter()
call = flowport.run if write else flowport.plan
summary = asyncio.run(call(job_path, sources={"products": frame}))
seconds = time.perf_counter() - started
running = False
sampler.join()
peak = max(peak, rss())
print(json.dumps({
    "rows": rows,
    "command": "flowport.run (sandbox in its own process)" if write else "flowport.plan",
    "frame_mb": round(frame.memory_usage(deep=True).sum() / 1e6, 1),
    "rss_before_mb": round(before / 1e6, 1),
    "rss_peak_mb": round(peak / 1e6, 1),
    "extra_mb": round((peak - before) / 1e6, 1),
    "seconds": round(seconds, 1),
    "collections": summary.collections,
    "exit_code": summary.exit_code,
}))
"""

JOB = """
[destination]
api = "{api}"
{site}
rate_limit = 100000
concurrency = 8
{token}

[collections.products]
target = "Products"
create_missing = true
source = {{ type = "dataframe", key = "sku" }}
slug_from = "name"

[collections.products.fields]
name = "title"
price = "price"
in-stock = "in_stock"
released = "released"
"""


def measure(rows: int, folder: Path, *, api: str, site_id: str | None, write: bool) -> Any:
    job = folder / f"products-{rows}.toml"
    job.write_text(
        JOB.format(
            api=api,
            site=f'site_id = "{site_id}"' if site_id else "",
            token=f'token_env = "{BENCH_TOKEN_ENV}"' if site_id else "",
        ),
        encoding="utf-8",
    )
    env = {**os.environ, BENCH_TOKEN_ENV: TOKEN}
    result = subprocess.run(
        [CHILD_PYTHON, "-c", CHILD, str(rows), str(job), "write" if write else "plan"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--write", action="store_true", help="run into a sandbox process")
    args = parser.parse_args()
    results = []
    with scratch_dir("dataframe") as folder:
        for rows in args.rows:
            if args.write:
                with sandbox_process(
                    rate_limit=1_000_000, window_seconds=60.0, item_limit=rows + 10
                ) as sandbox:
                    results.append(
                        measure(
                            rows, folder, api=sandbox.base_url, site_id=sandbox.site_id, write=True
                        )
                    )
            else:
                results.append(measure(rows, folder, api="sandbox", site_id=None, write=False))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
