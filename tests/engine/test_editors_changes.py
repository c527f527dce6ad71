"""Edits made in Webflow are never overwritten silently (issue 13).

Each test runs a job against the sandbox (a real server on 127.0.0.1), lets an "editor" change
an item through the API as another client would, changes the same record in the source, and
runs again under each ``conflicts`` policy.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.pipeline.jobfile import load_job
from flowport.pipeline.logging import NullSink
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, run_cli_async
from tests.engine.conftest import sandbox_stats
from tests.engine.test_nightly import (
    CSV_SOURCE,
    books,
    collection_id,
    items,
    job_text,
    write_books,
)

LIST_ROUTE = "/v2/collections/{collection_id}/items"


def setup_job(sandbox: Sandbox, job_dir: Path, *, extra: str = "", n: int = 3) -> Path:
    path = job_dir / "job.toml"
    path.write_text(job_text(sandbox.base_url, sandbox.site_id, CSV_SOURCE, extra=extra))
    write_books(job_dir / "books.csv", books(n))
    return path


async def by_slug(
    sandbox: Sandbox, target: str, *, live: bool = False
) -> dict[str, dict[str, Any]]:
    return {i.field_data["slug"]: i.field_data for i in await items(sandbox, target, live=live)}


async def edit_in_webflow(
    sandbox: Sandbox, target: str, slug: str, *, live: bool = True, **fields: Any
) -> None:
    """An editor's change, made through the API by a client that is not flowport's run: to the
    live item, or (``live=False``) to its staged version only, a draft of changes."""
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as editor:
        (item,) = [i for i in await items(sandbox, target) if i.field_data["slug"] == slug]
        await editor.update_items(target, [{"id": item.id, "fieldData": fields}], live=live)


def change_source(job_dir: Path, n: int = 3) -> None:
    """Book 1's page count changes in the source; its title stays."""
    rows = books(n)
    rows[1] = ("1", "Book 1", "999")
    write_books(job_dir / "books.csv", rows)


async def list_reads(sandbox: Sandbox) -> int:
    stats = await sandbox_stats(sandbox)
    return sum(
        e["count"] for e in stats["endpoints"] if e["method"] == "GET" and e["route"] == LIST_ROUTE
    )


async def test_an_item_changed_in_webflow_and_in_the_source_is_reported_not_overwritten(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", name="Book 1, as the editor wrote it")
    change_source(job_dir)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 1, summary.as_dict()
    per = summary.collections["books"]
    assert per["conflicts"] == 1
    assert "updated" not in per
    held = (await by_slug(sandbox, target))["book-1"]
    assert (held["name"], held["pages"]) == ("Book 1, as the editor wrote it", 101)
    (conflict,) = summary.conflicts
    assert conflict["key"] == "1"
    assert conflict["fields"] == ["name"]
    assert conflict["outcome"] == "conflicts"
    # Named per item where a user looks: `flowport errors`.
    listed = await run_cli_async("errors", "job.toml", "--format", "json", cwd=job_dir)
    (error,) = json.loads(listed.stdout)
    assert (error["key"], error["kind"], error["field"]) == ("1", "conflict", "name")
    assert "changed in Webflow at" in error["reason"]
    assert "--conflicts overwrite" in error["reason"]

    # Not forgotten: the next run meets it again (and still leaves the editor's work).
    again = await run_job(load_job(path))
    assert again.exit_code == 1
    assert again.collections["books"]["conflicts"] == 1
    assert (await by_slug(sandbox, target))["book-1"]["name"] == "Book 1, as the editor wrote it"

    # Resolved once by the user: overwrite writes the source's version, and says so.
    overwritten = await run_job(load_job(path).with_conflicts("overwrite"))
    assert overwritten.exit_code == 0, overwritten.as_dict()
    assert overwritten.collections["books"]["overwritten"] == 1
    held = (await by_slug(sandbox, target))["book-1"]
    assert (held["name"], held["pages"]) == ("Book 1", 999)
    shown = await run_cli_async("warnings", "job.toml", "--format", "json", cwd=job_dir)
    assert [w["kind"] for w in json.loads(shown.stdout)] == ["webflow_edit_overwritten"]
    # And the item is ours again: the next run is quiet.
    quiet = await run_job(load_job(path))
    assert quiet.exit_code == 0, quiet.as_dict()
    # flowport's own writes are never taken for someone else's.
    assert quiet.collections["books"] == {"unchanged": 3, "warning:webflow_edit_overwritten": 1}


async def test_an_editors_staged_draft_is_a_change_too(sandbox: Sandbox, job_dir: Path) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", live=False, name="A draft of a new title")
    change_source(job_dir)

    summary = await run_job(load_job(path))

    assert summary.collections["books"]["conflicts"] == 1, summary.as_dict()
    assert (await by_slug(sandbox, target))["book-1"]["name"] == "A draft of a new title"
    assert (await by_slug(sandbox, target, live=True))["book-1"]["pages"] == 101


async def test_a_source_that_takes_the_editors_version_is_no_conflict(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", name="A better title")
    rows = books(3)
    rows[1] = ("1", "A better title", "101")  # the source is fixed the way the editor fixed it
    write_books(job_dir / "books.csv", rows)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert "conflicts" not in summary.collections["books"]
    assert (await by_slug(sandbox, target))["book-1"]["name"] == "A better title"
    again = await run_job(load_job(path))
    assert again.collections["books"] == {"unchanged": 3}


async def test_an_item_the_editor_archived_stays_archived(sandbox: Sandbox, job_dir: Path) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as editor:
        (item,) = [i for i in await items(sandbox, target) if i.field_data["slug"] == "book-1"]
        await editor.update_items(target, [{"id": item.id, "isArchived": True}], live=False)
    change_source(job_dir)

    summary = await run_job(load_job(path))

    (conflict,) = summary.conflicts
    assert conflict["fields"] == ["isArchived"]
    (held,) = [i for i in await items(sandbox, target) if i.field_data["slug"] == "book-1"]
    assert held.is_archived
    assert held.field_data["pages"] == 101


async def test_merge_writes_only_the_fields_the_source_changed(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir, extra='conflicts = "merge"')
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", name="Book 1, as the editor wrote it")
    change_source(job_dir)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["books"]["merged"] == 1
    held = (await by_slug(sandbox, target))["book-1"]
    # The editor's title is kept, the source's new page count written.
    assert (held["name"], held["pages"]) == ("Book 1, as the editor wrote it", 999)
    shown = await run_cli_async("warnings", "job.toml", "--format", "json", cwd=job_dir)
    (warning,) = json.loads(shown.stdout)
    assert warning["kind"] == "webflow_edit_merged"
    assert "pages" in warning["excerpt"]
    # Merged items count as written: a rerun sends nothing.
    rerun = await run_job(load_job(path))
    assert rerun.exit_code == 0
    assert rerun.collections["books"] == {"unchanged": 3, "warning:webflow_edit_merged": 1}


async def test_a_change_in_webflow_alone_is_counted_and_left_alone(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-2", name="Renamed by the editor")

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["books"]["changed_in_webflow_only"] == 1
    assert (await by_slug(sandbox, target))["book-2"]["name"] == "Renamed by the editor"
    # Remembered: when its record changes later, that is a conflict, not an overwrite.
    rows = books(3)
    rows[2] = ("2", "Book 2", "555")
    write_books(job_dir / "books.csv", rows)
    later = await run_job(load_job(path))
    assert later.collections["books"]["conflicts"] == 1
    assert (await by_slug(sandbox, target))["book-2"]["name"] == "Renamed by the editor"


async def test_plan_shows_the_conflict_and_writes_nothing(sandbox: Sandbox, job_dir: Path) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", name="Book 1, as the editor wrote it")
    change_source(job_dir)
    log = job_dir / "job" / "checkpoint.sqlite"
    before = sqlite3.connect(log).execute("SELECT * FROM items ORDER BY key").fetchall()
    writes_before = (await sandbox_stats(sandbox))["totals"]["writes"]

    shown = await run_cli_async("plan", "job.toml", cwd=job_dir)

    assert "books 1 (item " in shown.stdout, shown.stdout
    assert "changed in Webflow at" in shown.stdout
    assert "(name) and in the source: a run would leave it as it is (conflict)" in shown.stdout
    assert (await sandbox_stats(sandbox))["totals"]["writes"] == writes_before
    after = sqlite3.connect(log).execute("SELECT * FROM items ORDER BY key").fetchall()
    assert after == before
    as_json = await run_cli_async("plan", "job.toml", "--format", "json", cwd=job_dir)
    planned = json.loads(as_json.stdout)
    assert planned["collections"]["books"]["conflicts"] == 1
    overwrite = await run_cli_async(
        "plan", "job.toml", "--format", "json", "--conflicts", "overwrite", cwd=job_dir
    )
    assert json.loads(overwrite.stdout)["collections"]["books"]["would_update"] == 1


async def test_a_nightly_check_costs_a_read_or_two_per_collection(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir, n=250)
    assert (await run_job(load_job(path))).exit_code == 0
    # The run after the import lists what the import wrote, once (250 items: 3 pages).
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    await edit_in_webflow(sandbox, target, "book-1", name="Edited")
    await edit_in_webflow(sandbox, target, "book-7", name="Edited")
    change_source(job_dir, n=250)
    reads = await list_reads(sandbox)

    summary = await run_job(load_job(path))

    assert summary.collections["books"]["conflicts"] == 1
    # The listing of what changed since the last check (a page, or two when the items sharing the
    # newest lastUpdated, up to a batch of 100 written in one millisecond, are listed again with
    # the two edits), and one look for items to adopt: not one read per item.
    assert 2 <= await list_reads(sandbox) - reads <= 3
    assert summary.collections["books"]["changed_in_webflow_only"] == 1


async def test_an_adopted_item_is_not_taken_for_an_editors_change(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    # Someone adds the next book by hand, with the very values the job would send.
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as someone:
        await someone.create_items(
            target,
            [{"name": "Book 3", "slug": "book-3", "source-key": "3", "pages": 103}],
            live=True,
        )
    write_books(job_dir / "books.csv", books(4))
    adopted = await run_job(load_job(path))
    assert adopted.collections["books"] == {"adopted": 1, "unchanged": 4}
    # Its record changes: an update, not a conflict (the item is as flowport adopted it).
    rows = books(4)
    rows[3] = ("3", "Book 3", "333")
    write_books(job_dir / "books.csv", rows)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["books"] == {"updated": 1, "unchanged": 3}
    assert (await by_slug(sandbox, target))["book-3"]["pages"] == 333


async def test_a_log_from_before_the_check_starts_guarding_from_its_first_run(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir)
    assert (await run_job(load_job(path))).exit_code == 0
    target = collection_id(job_dir)
    # As a log of schema 6 holds it once migrated: no write times, no field hashes, no horizon.
    with sqlite3.connect(job_dir / "job" / "checkpoint.sqlite") as db:
        db.execute("UPDATE items SET webflow_updated = NULL, field_hashes = NULL")
        db.execute("DELETE FROM edit_horizons")
    # Edited before the first check: not knowable, and not taken for a change either.
    await edit_in_webflow(sandbox, target, "book-0", name="Edited before the upgrade")
    first = await run_job(load_job(path))
    assert first.collections["books"] == {"unchanged": 3}, first.as_dict()

    await edit_in_webflow(sandbox, target, "book-1", name="Edited after")
    change_source(job_dir)
    merged = await run_job(load_job(path).with_conflicts("merge"))

    # Changed since the first check: found; which fields is not known, so merge cannot tell.
    (conflict,) = merged.conflicts
    assert (conflict["key"], conflict["fields"], conflict["outcome"]) == ("1", [], "conflicts")
    assert (await by_slug(sandbox, target))["book-1"]["name"] == "Edited after"


class _EditorDuringTheRun(NullSink):
    """An editor's change made while a run goes on: after the run's check for edits (which
    comes before ``collection_started``), before the run's own writes, which come later."""

    def __init__(self, sandbox: Sandbox, collection: str, item_id: str, name: str) -> None:
        self.sandbox, self.collection, self.item_id, self.name = sandbox, collection, item_id, name

    def collection_started(self, collection: str, total: int | None) -> None:
        # The sandbox's own core, as its PATCH handler calls it: nothing awaits in between.
        edit = {"items": [{"id": self.item_id, "fieldData": {"name": self.name}}]}
        self.sandbox.core.update_items(self.collection, edit)
        time.sleep(0.005)  # the run's writes get later lastUpdated values than the edit


async def test_the_rerun_after_an_import_does_not_list_the_imports_own_writes(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = setup_job(sandbox, job_dir, n=1500)
    assert (await run_job(load_job(path))).exit_code == 0
    reads = await list_reads(sandbox)

    rerun = await run_job(load_job(path))

    assert rerun.collections["books"] == {"unchanged": 1500}, rerun.as_dict()
    # What changed after the import's last write (a page) and one look for items to adopt,
    # not the 1,500 items the import wrote (15 pages).
    assert await list_reads(sandbox) - reads <= 3
    # Nor the run after that one.
    reads = await list_reads(sandbox)
    assert (await run_job(load_job(path))).collections["books"] == {"unchanged": 1500}
    assert await list_reads(sandbox) - reads <= 3


@pytest.mark.parametrize("changed", ["one record", "every record"])
async def test_an_edit_made_during_a_run_is_not_overwritten_by_a_later_run(
    sandbox: Sandbox, job_dir: Path, changed: str
) -> None:
    """One changed record reads its item on its own; 260 would cost more reads than the three
    pages listing the window of the earlier runs' writes takes, so the window is listed."""
    path = setup_job(sandbox, job_dir, n=250)
    assert (await run_job(load_job(path))).exit_code == 0
    assert (await run_job(load_job(path))).exit_code == 0  # the rerun after the import
    target = collection_id(job_dir)
    (book_1,) = [i for i in await items(sandbox, target) if i.field_data["slug"] == "book-1"]
    # Ten new books: the run writes them after the editor renamed book 1, which its own check,
    # made before, could not see; so the edit lies before the log's newest write of its own.
    write_books(job_dir / "books.csv", books(260))
    editor = _EditorDuringTheRun(sandbox, target, book_1.id, "Renamed while the run went on")
    during = await run_job(load_job(path), editor)
    assert during.collections["books"] == {"created": 10, "unchanged": 250}, during.as_dict()

    quiet = await run_job(load_job(path))  # nothing changed in the source: nothing to write
    assert quiet.exit_code == 0, quiet.as_dict()
    if changed == "one record":
        change_source(job_dir, n=260)
    else:
        write_books(job_dir / "books.csv", [(k, t, str(int(p) + 1000)) for k, t, p in books(260)])
    reads = await list_reads(sandbox)
    summary = await run_job(load_job(path))
    # Lists: a page after the newest write, one look for items to adopt, and for every record
    # the window's three pages (one record's item is read on its own, a GET, not a list).
    assert await list_reads(sandbox) - reads == (2 if changed == "one record" else 5)

    assert summary.collections["books"]["conflicts"] == 1, summary.as_dict()
    assert summary.collections["books"].get("updated", 0) == (0 if changed == "one record" else 259)
    (conflict,) = summary.conflicts
    assert (conflict["key"], conflict["fields"]) == ("1", ["name"])
    held = (await by_slug(sandbox, target))["book-1"]
    assert (held["name"], held["pages"]) == ("Renamed while the run went on", 101)
    # Found once, kept: the next run meets the conflict again without reading anything more.
    again = await run_job(load_job(path))
    assert again.collections["books"]["conflicts"] == 1, again.as_dict()
