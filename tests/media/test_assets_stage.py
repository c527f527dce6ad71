"""The assets stage end to end: a job's images and files move from a real local "old site"
into the sandbox's assets, items are rewritten to them, and a rerun moves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.file_values import Sameness, compare_values
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from tests.conftest import TOKEN, SandboxStarter, run_cli, write_csv
from tests.oldsite import ImageHost, png

PDF = b"%PDF-1.4\n" + b"1" * 700 + b"\n%%EOF\n"


def job_text(sandbox: Sandbox, host: ImageHost, assets: str = "") -> str:
    return f"""
[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[assets]
enabled = true
hosts = ["{host.base_url.removeprefix("http://")}"]
{assets}

[collections.posts]
target = "Posts"
create_missing = true
source = {{ type = "csv", path = "posts.csv", key = "id" }}
slug_from = "name"

[collections.posts.fields]
name = "title"
image = "image"
gallery = {{ source = "gallery", transforms = [{{ split = " " }}] }}
doc = "doc"
body = "body"

[collections.posts.schema]
singular_name = "Post"
fields = {{ image = "Image", gallery = "MultiImage", doc = "File", body = "RichText" }}
"""


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    return tmp_path


def site_items(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every item of the site as staged, with its field data."""
    state = sandbox.core.dump_state()
    return [item for collection in state["collections"] for item in collection["items"]]


async def test_images_files_and_rich_text_move_once_and_a_rerun_moves_nothing(
    sandbox: Sandbox, image_host: ImageHost, job_dir: Path
) -> None:
    shared = png(24, 24, shade=1)
    image_host.files["/uploads/shared.png"] = (shared, "image/png")
    for n in range(3):
        image_host.files[f"/uploads/g{n}.png"] = (png(8, 8, shade=10 + n), "image/png")
    image_host.files["/uploads/inline.png"] = (png(12, 6, shade=40), "image/png")
    image_host.files["/uploads/guide.pdf"] = (PDF, "application/pdf")
    url = image_host.url
    rows = [
        (
            str(n),
            f"Post {n}",
            url("/uploads/shared.png"),
            f"{url('/uploads/g0.png')} {url('/uploads/g1.png')} {url('/uploads/g2.png')}",
            url("/uploads/guide.pdf"),
            f'<p>Look <img src="{url("/uploads/inline.png")}" alt="inline"></p>'
            f'<p><a href="{url("/uploads/guide.pdf")}">the guide</a> and '
            f'<a href="https://example.org/page">a page</a></p>',
        )
        for n in range(50)
    ]
    write_csv(job_dir / "posts.csv", ["id", "title", "image", "gallery", "doc", "body"], rows)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox, image_host))

    summary = await run_job(load_job(path))
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["posts"]["created"] == 50
    # shared, 3 gallery images, inline, the PDF: six files, each uploaded once, by one create
    # each on the rate budget (the uploads to storage are not API requests), after one look at
    # the site's assets (the log knows none of the site's: a first run, or a lost log).
    assert summary.assets["uploaded"] == 6, summary.assets
    assert summary.assets["api_requests"] == 1 + 6, summary.assets
    assets = sandbox.core.assets.dump()
    assert len(assets) == 6
    assert all(a["uploaded"] for a in assets)
    hosted = {a["id"]: a["hostedUrl"] for a in assets}
    for path_ in ("/uploads/shared.png", "/uploads/inline.png", "/uploads/guide.pdf"):
        assert image_host.hits[path_] == 1, path_

    items = site_items(sandbox)
    assert len(items) == 50
    for item in items:
        data = item["fieldData"]
        text = repr(data)
        assert image_host.base_url not in text, text
        assert data["image"]["fileId"] in hosted
        assert data["image"]["url"] == hosted[data["image"]["fileId"]]
        assert [g["url"] for g in data["gallery"]] == [hosted[g["fileId"]] for g in data["gallery"]]
        assert data["doc"]["url"] == hosted[data["doc"]["fileId"]]
        assert "https://example.org/page" in data["body"]  # a link to a page is not a file

    writes_before = sandbox.stats()["totals"]["writes"]
    hits_before = sum(image_host.hits.values())
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    assert again.collections == {"posts": {"unchanged": 50}}
    assert sum(image_host.hits.values()) == hits_before  # nothing fetched
    assert sandbox.stats()["totals"]["writes"] == writes_before  # nothing sent
    assert len(sandbox.core.assets.dump()) == 6
    status = run_cli("status", str(path), cwd=job_dir)
    assert "assets moved into the site: uploaded 6" in status.stdout, status.output


async def test_files_that_cannot_move_are_named_per_item_as_each_field_chooses(
    sandbox: Sandbox, image_host: ImageHost, job_dir: Path
) -> None:
    image_host.files["/uploads/ok.png"] = (png(10, 10, shade=3), "image/png")
    image_host.files["/uploads/guide.pdf"] = (PDF, "application/pdf")
    # Past Webflow's 4 MB for images: 1,200 x 1,400 pixels, uncompressed, is about 5 MB.
    image_host.files["/uploads/huge.png"] = (png(1200, 1400, shade=5), "image/png")
    image_host.files["/login"] = (b"<!doctype html><html><body>Log in</body></html>", "text/html")
    image_host.redirects["/uploads/moved.jpg"] = "/login"
    url = image_host.url
    ok, pdf = url("/uploads/ok.png"), url("/uploads/guide.pdf")
    rows = [
        ("gone", "Gone image", url("/uploads/gone.png"), ok, pdf, "<p>x</p>"),
        ("huge", "Huge in gallery", ok, f"{ok} {url('/uploads/huge.png')}", pdf, "<p>y</p>"),
        (
            "html",
            "Image that is a page",
            ok,
            ok,
            pdf,
            f'<p><img src="{url("/uploads/moved.jpg")}" alt="m"></p>',
        ),
    ]
    write_csv(job_dir / "posts.csv", ["id", "title", "image", "gallery", "doc", "body"], rows)
    path = job_dir / "job.toml"
    per_field = '[assets.fields]\nimage = { on_failure = "fail" }\n'
    per_field += '"posts.gallery" = { on_failure = "skip" }\n'
    path.write_text(job_text(sandbox, image_host, per_field))

    summary = await run_job(load_job(path))
    assert summary.exit_code == 1, summary.as_dict()
    assert summary.collections["posts"] == {
        "failed": 1,
        "created": 2,
        # Standing warnings, counted by kind in the summary.
        "warning:media_too_large": 1,
        "warning:media_not_an_image": 1,
    }
    assert summary.assets["failed"] == 3, summary.assets

    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        [error] = list(log.errors())
        warnings = {(w.key, w.field, w.kind): w.excerpt for _c, w, _t in log.warnings.all()}
    assert (error.key, error.error_field, error.error_kind) == ("gone", "image", "media")
    assert url("/uploads/gone.png") in (error.last_error or "")
    assert "not_found" in (error.last_error or "")
    assert set(warnings) == {
        ("huge", "gallery", "media_too_large"),
        ("html", "body", "media_not_an_image"),
    }
    assert warnings[("huge", "gallery", "media_too_large")].startswith("skipped: ")
    assert "kept the original URL" in warnings[("html", "body", "media_not_an_image")]

    items = {i["fieldData"]["name"]: i["fieldData"] for i in site_items(sandbox)}
    assert set(items) == {"Huge in gallery", "Image that is a page"}
    assert len(items["Huge in gallery"]["gallery"]) == 1  # the oversized one skipped
    assert url("/uploads/moved.jpg") in items["Image that is a page"]["body"]  # kept

    # The next run tries the failed item and the degraded ones again; what moved stays moved.
    fetched_ok = image_host.hits["/uploads/ok.png"]
    again = await run_job(load_job(path))
    counts = again.collections["posts"]
    assert (counts["failed"], counts["updated"]) == (1, 2), again.as_dict()
    assert image_host.hits["/uploads/ok.png"] == fetched_ok
    assert image_host.hits["/uploads/gone.png"] == 2


async def test_a_plan_counts_and_probes_the_files_and_writes_nothing(
    sandbox: Sandbox, image_host: ImageHost, job_dir: Path
) -> None:
    picture = png(10, 10, shade=8)
    image_host.files["/uploads/a.png"] = (picture, "image/png")
    image_host.files["/uploads/guide.pdf"] = (PDF, "application/pdf")
    url = image_host.url
    rows = [
        (str(n), f"Post {n}", url("/uploads/a.png"), url("/uploads/a.png"), "", "<p>z</p>")
        for n in range(3)
    ]
    rows.append(("9", "Gone", url("/uploads/gone.png"), url("/uploads/a.png"), "", "<p>q</p>"))
    write_csv(job_dir / "posts.csv", ["id", "title", "image", "gallery", "doc", "body"], rows)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox, image_host).replace('doc = "doc"\n', ""))

    plan = await run_job(load_job(path), dry_run=True)
    assert plan.assets == {
        "planned": 2,
        "planned_bytes": len(picture),
        "planned_unknown_size": 1,
        "failed": 1,
    }, plan.assets
    [problem] = [note for note in plan.notes if note.startswith("media ")]
    assert problem.startswith(f"media not_found: {url('/uploads/gone.png')}")
    assert "used by posts 9 (image)" in problem
    assert sandbox.core.assets.dump() == []
    assert sum(n for p, n in image_host.hits.items()) == 2  # one HEAD each, no download


async def test_a_log_rehomed_to_another_site_moves_the_files_there_again(
    start_sandbox: SandboxStarter, image_host: ImageHost, job_dir: Path
) -> None:
    image_host.files["/uploads/a.png"] = (png(9, 9, shade=21), "image/png")
    image_host.files["/uploads/guide.pdf"] = (PDF, "application/pdf")
    url = image_host.url
    rows = [(str(n), f"Post {n}", url("/uploads/a.png"), "", url("/uploads/guide.pdf"), "<p/>")
            for n in range(3)]  # fmt: skip
    write_csv(job_dir / "posts.csv", ["id", "title", "image", "gallery", "doc", "body"], rows)
    path = job_dir / "job.toml"
    first_site = await start_sandbox()
    path.write_text(job_text(first_site, image_host))
    assert (await run_job(load_job(path))).exit_code == 0

    other_site = await start_sandbox(seed=6)  # another seed: another site id
    assert other_site.site_id != first_site.site_id
    path.write_text(job_text(other_site, image_host))
    moved = await run_job(load_job(path), rehome=True)
    assert moved.exit_code == 0, moved.as_dict()
    # The first site's assets are not the second's: both files are uploaded there too.
    assert moved.assets.get("uploaded") == 2, moved.assets
    there = {a["id"] for a in other_site.core.assets.dump()}
    assert len(there) == 2
    for item in site_items(other_site):
        assert item["fieldData"]["image"]["fileId"] in there
        assert item["fieldData"]["doc"]["fileId"] in there


async def test_rich_text_urls_with_entities_and_either_quote_are_moved(
    sandbox: Sandbox, image_host: ImageHost, job_dir: Path
) -> None:
    image_host.files["/uploads/q.png"] = (png(7, 7, shade=33), "image/png")
    image_host.files["/uploads/p.png"] = (png(6, 9, shade=34), "image/png")
    image_host.files["/uploads/guide.pdf"] = (PDF, "application/pdf")
    url = image_host.url
    body = (
        f"<p><img src='{url('/uploads/q.png')}?v=1&amp;w=2' alt='q'> and "
        f'<img alt="p" src="{url("/uploads/p.png")}"></p>'
        f'<p><img src="https://elsewhere.example/x.png" alt="x"></p>'
    )
    rows = [("1", "Quotes", url("/uploads/q.png"), "", url("/uploads/guide.pdf"), body)]
    write_csv(job_dir / "posts.csv", ["id", "title", "image", "gallery", "doc", "body"], rows)
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox, image_host))
    summary = await run_job(load_job(path))
    assert summary.exit_code == 0, summary.as_dict()
    [item] = site_items(sandbox)
    text = item["fieldData"]["body"]
    assert image_host.base_url not in text, text
    hosted = {a["hostedUrl"] for a in sandbox.core.assets.dump()}
    assert sum(1 for h in hosted if h in text) == 2, text
    # Not the old site's: left as it was.
    assert "https://elsewhere.example/x.png" in text


def test_adoption_knows_a_moved_file_by_its_source_name() -> None:
    """After a lost log, an item whose image the assets stage moved is the same by name: the
    asset's name is the source's with the content's hash marker."""
    file_id = "6b15a280427566cc6c00000a"
    stored = {"fileId": file_id, "url": f"https://cdn.example/{file_id}_photo-3f9a1c27be04.png"}
    mapped = {"url": "https://old.example.com/wp-content/uploads/photo.png"}
    assert compare_values(mapped, stored) is Sameness.SAME_BY_NAME
    other = {"url": "https://old.example.com/wp-content/uploads/other.png"}
    assert compare_values(other, stored) is Sameness.DIFFERENT
