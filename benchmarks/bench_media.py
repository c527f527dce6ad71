"""Media: how fast the assets stage moves files, and whether it keeps the rate budget busy.

    .venv/bin/python benchmarks/bench_media.py [--rows 6000] [--quick]

A CSV of ``rows`` posts, each ten consecutive posts sharing one generated PNG (~30 kB) served by
a real HTTP server on 127.0.0.1 (the "old site", in a thread of this process); the job moves
them with ``[assets]`` into a sandbox process limited, as ``bench_saturation``, to 120 requests
per 6 s window (Webflow's 120 a minute compressed 10x). Asset creates take from the same budget
as item writes; downloads and uploads to storage take nothing from it.

Figures: assets per real minute and bytes per second uploaded; the budgeted requests (item
writes and asset creates) per window in the steady state, between the first and the last such
request, as a share of the 120 ceiling (target: at least 0.95, i.e. downloads and uploads never
leave the budget idle); and, for comparison, the same job's item-write rate without media.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    ITEM_WRITE_ROUTES,
    SandboxProcess,
    bench_main,
    run_flowport,
    sandbox_process,
    scratch_dir,
    write_job,
)

from tests.oldsite import png

__all__ = ["run"]

RATE_LIMIT = 120
WINDOW_SECONDS = 6.0
POSTS_PER_IMAGE = 10
ASSET_CREATE_ROUTE = "/v2/sites/{site_id}/assets"


@contextmanager
def old_site(images: int) -> Iterator[str]:
    files = {f"/uploads/{n}.png": png(100, 100, n) + n.to_bytes(4, "big") for n in range(images)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def budgeted_requests(stats: dict[str, Any]) -> tuple[int, int, int]:
    """(item writes, asset creates, both) counted by the sandbox, any status."""
    items = creates = 0
    for row in stats["endpoints"]:
        if row["method"] in ("POST", "PATCH") and row["route"] in ITEM_WRITE_ROUTES:
            items += row["count"]
        elif row["method"] == "POST" and row["route"] == ASSET_CREATE_ROUTE:
            creates += row["count"]
    return items, creates, items + creates


@dataclass
class Poller:
    sandbox: SandboxProcess
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        self.samples.append((time.perf_counter(), budgeted_requests(self.sandbox.stats())[2]))

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def steady_state(self) -> tuple[int, float]:
        first = next((s for s in self.samples if s[1] > 0), None)
        if first is None:
            return 0, 0.0
        final = self.samples[-1][1]
        last = next(s for s in self.samples if s[1] == final)
        return last[1] - first[1], last[0] - first[0]


def _write_csv(path: Path, rows: int, host: str, *, media: bool) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,title,summary,score,featured,published_at,image\n")
        for n in range(rows):
            image = f"http://{host}/uploads/{n // POSTS_PER_IMAGE}.png" if media else ""
            handle.write(
                f"{n},Post number {n},A short summary of post {n},{n % 997}.5,true,"
                f"2024-01-{n % 28 + 1:02d}T10:00:00Z,{image}\n"
            )


def measure(rows: int, host: str, *, media: bool, timeout: float) -> dict[str, Any]:
    with (
        scratch_dir(f"media-{rows}") as folder,
        sandbox_process(
            rate_limit=RATE_LIMIT, window_seconds=WINDOW_SECONDS, item_limit=rows + 1000
        ) as sandbox,
    ):
        _write_csv(folder / "posts.csv", rows, host, media=media)
        job = folder / "job.toml"
        write_job(
            job,
            api=sandbox.base_url,
            site_id=sandbox.site_id,
            csv_path=folder / "posts.csv",
            rate_limit=RATE_LIMIT,
            window_seconds=WINDOW_SECONDS,
        )
        text = job.read_text(encoding="utf-8")
        if media:
            text = text.replace(
                "[collections.posts]",
                f'[assets]\nenabled = true\nhosts = ["{host}"]\n\n[collections.posts]',
            )
            text = text.replace(
                'source-key = "PlainText"\n', 'source-key = "PlainText"\nimage = "Image"\n'
            )
            text = text.replace('source-key = "id"\n', 'source-key = "id"\nimage = "image"\n')
        job.write_text(text, encoding="utf-8")
        with Poller(sandbox) as poller:
            result = run_flowport(
                "run", "job.toml", "--log-format", "json", folder=folder, timeout=timeout
            )
        items, creates, _ = budgeted_requests(sandbox.stats())
    steady, seconds = poller.steady_state()
    finished = result.finished
    assets = finished.get("assets", {})
    per_window = steady / seconds * WINDOW_SECONDS if seconds else 0.0
    figures: dict[str, Any] = {
        "media": media,
        "rows": rows,
        "exit_code": result.exit_code,
        "outcomes": finished.get("collections", {}).get("posts", {}),
        "wall_seconds": round(result.wall_seconds, 2),
        "item_write_requests": items,
        "asset_creates": creates,
        "steady_seconds": round(seconds, 2),
        "budgeted_requests_per_window": round(per_window, 1),
        "share_of_ceiling": round(per_window / RATE_LIMIT, 3),
    }
    if media:
        uploaded = int(assets.get("uploaded", 0))
        # One compressed window stands for one real minute.
        figures["assets"] = assets
        figures["assets_per_real_minute"] = round(uploaded / seconds * WINDOW_SECONDS, 1)
        figures["upload_bytes_per_second"] = round(int(assets.get("bytes", 0)) / seconds)
    return figures


def run(quick: bool, rows: int | None) -> dict[str, Any]:
    rows = rows or (2_000 if quick else 6_000)
    with old_site(rows // POSTS_PER_IMAGE + 1) as host:
        with_media = measure(rows, host, media=True, timeout=900)
        without = measure(rows, host, media=False, timeout=900)
    return {
        "benchmark": "media",
        "rate_limit": f"{RATE_LIMIT} per {WINDOW_SECONDS:g} s",
        "with_media": with_media,
        "without_media": without,
        "target": "budgeted requests per window >= 0.95 of the ceiling with media",
        "met": with_media["share_of_ceiling"] >= 0.95,
    }


def main() -> None:
    bench_main(__doc__, run)


if __name__ == "__main__":
    main()
