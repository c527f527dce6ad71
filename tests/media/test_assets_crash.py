"""SIGKILL the CLI at each step of moving a file, rerun it: every file is one asset, with its
bytes, and every item points at it. The sandbox runs in its own process and survives the
kill, as Webflow would; the old site is a real HTTP server in a thread of the test."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from tests.conftest import write_csv
from tests.crash.harness import (
    EXIT_OK,
    KILLED,
    TOKEN_ENV,
    SandboxProcess,
    run_flowport,
    sandbox_process,
    summary_of,
)
from tests.oldsite import png

IMAGES = 5
POSTS = 12  # more posts than images: some share one


class _OldSite(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header(
            "Content-Type", "application/pdf" if self.path.endswith(".pdf") else "image/png"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def old_site() -> Iterator[str]:
    _OldSite.files = {f"/uploads/{n}.png": png(6 + n, 5, shade=n * 17) for n in range(IMAGES)}
    _OldSite.files["/uploads/manual.pdf"] = b"%PDF-1.4\n" + b"2" * 300
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_job(folder: Path, sandbox: SandboxProcess, host: str) -> Path:
    rows = [
        (
            str(n),
            f"Post {n}",
            f"http://{host}/uploads/{n % IMAGES}.png",
            f'<p><a href="http://{host}/uploads/manual.pdf">manual</a></p>',
        )
        for n in range(POSTS)
    ]
    write_csv(folder / "posts.csv", ["id", "title", "image", "body"], rows)
    job = folder / "media.toml"
    job.write_text(
        textwrap.dedent(
            f"""
            [destination]
            api = "{sandbox.base_url}"
            site_id = "{sandbox.site_id}"
            token_env = "{TOKEN_ENV}"
            rate_limit = 100000

            [assets]
            enabled = true
            hosts = ["{host}"]
            concurrency = 1

            [collections.posts]
            target = "Posts"
            create_missing = true
            source = {{ type = "csv", path = "posts.csv", key = "id" }}
            slug_from = "name"

            [collections.posts.fields]
            name = "title"
            image = "image"
            body = "body"

            [collections.posts.schema]
            singular_name = "Post"
            fields = {{ image = "Image", body = "RichText" }}
            """
        )
    )
    return job


@pytest.mark.parametrize(
    "crash_at",
    [
        "asset-intent:1",
        "asset-intent:3",
        "asset-answered:1",
        "asset-answered:4",
        "asset-created:2",
        "asset-uploaded:1",
        "asset-uploaded:5",
    ],
)
def test_a_kill_while_moving_files_leaves_no_duplicate_and_none_missing(
    tmp_path: Path, old_site: str, crash_at: str
) -> None:
    with sandbox_process(seed=11) as sandbox:
        job = write_job(tmp_path, sandbox, old_site)
        killed = run_flowport(job, crash_at=crash_at)
        assert killed.returncode == KILLED, killed.stderr[-2000:]
        rerun = run_flowport(job)
        assert rerun.returncode == EXIT_OK, (summary_of(rerun), rerun.stderr[-2000:])
        state = sandbox.state()
    assets = state["assets"]
    # One asset per distinct file (five images and the PDF), each with its bytes.
    assert len(assets) == IMAGES + 1, [a["originalFileName"] for a in assets]
    assert all(a["uploaded"] for a in assets), assets
    by_id = {a["id"]: a for a in assets}
    [collection] = state["collections"]
    items = collection["items"]
    assert len(items) == POSTS
    for item in items:
        image = item["fieldData"]["image"]
        assert image["fileId"] in by_id
        assert image["url"] == by_id[image["fileId"]]["hostedUrl"]
        assert old_site not in item["fieldData"]["body"]
    with CheckpointLog.open(job.parent / job.stem / "checkpoint.sqlite") as log:
        assert log.assets.counts() == {"uploaded": IMAGES + 1}
