"""Warnings a user can act on, item by item: what reading or mapping a record changed is kept in
the checkpoint log per record, replaced whenever the record is mapped again, listed by
``flowport warnings``, shown by ``flowport plan`` before anything is written, and counted as
standing warnings in every run's summary and in ``flowport status``."""

from __future__ import annotations

import json
from pathlib import Path

from flowport.pipeline.checkpoint import CheckpointLog, ItemWarning
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from tests.badinput.test_corpus import POST_HEADER, make_job, post, run
from tests.conftest import run_cli_async, write_csv

LONG_TITLE = "A very long title " * 20  # 360 characters: truncated to 256, with a warning


def stored(path: Path) -> list[tuple[str, ItemWarning]]:
    with CheckpointLog.open(path.parent / path.stem / "checkpoint.sqlite") as log:
        return [(collection, warning) for collection, warning, _ in log.warnings.all()]


def warning_counts(counts: dict[str, int]) -> dict[str, int]:
    return {k: n for k, n in counts.items() if k.startswith("warning:")}


async def test_a_warning_is_stored_per_item_kept_while_standing_and_gone_once_fixed(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, [post("p1"), post("p2", title=LONG_TITLE)])

    first = await run(path)

    assert first.exit_code == 0, first.as_dict()
    [(collection, warning)] = stored(path)
    assert (collection, warning.key, warning.field, warning.kind) == (
        "posts",
        "p2",
        "name",
        "truncated",
    )
    assert warning.excerpt
    assert warning_counts(first.collections["posts"]) == {"warning:truncated": 1}

    # Nothing changed: p2 is not mapped again, and its warning still stands and still counts.
    second = await run(path)

    assert second.collections["posts"].get("unchanged") == 2, second.as_dict()
    assert [w.key for _, w in stored(path)] == ["p2"]
    assert warning_counts(second.collections["posts"]) == {"warning:truncated": 1}

    # The title fixed at the source: p2 is mapped again, warns of nothing, and loses its warning.
    write_csv(tmp_path / "posts.csv", POST_HEADER, [post("p1"), post("p2", title="Short")])
    third = await run(path)

    assert third.exit_code == 0, third.as_dict()
    assert stored(path) == []
    assert warning_counts(third.collections["posts"]) == {}


async def test_a_source_warning_is_stored_with_the_field_it_concerns(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, posts=None)
    header = ",".join(POST_HEADER).encode()
    good = ",".join(post("p1", title="Zoë")).encode("utf-8")
    fallback = ",".join(post("p2", title="Café")).encode("cp1252")
    (tmp_path / "posts.csv").write_bytes(b"\r\n".join([header, good, fallback]) + b"\r\n")

    summary = await run(path)

    assert summary.exit_code == 0, summary.as_dict()
    [(collection, warning)] = stored(path)
    assert (collection, warning.key, warning.field, warning.kind) == (
        "posts",
        "p2",
        "title",
        "encoding_fallback",
    )
    assert "cp1252" in warning.excerpt
    assert warning_counts(summary.collections["posts"]) == {"warning:encoding_fallback": 1}


async def test_plan_shows_warnings_before_anything_is_written_and_writes_none(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, [post("p1"), post("p2", title=LONG_TITLE)])

    planned = await run_job(load_job(path), dry_run=True)

    assert warning_counts(planned.collections["posts"]) == {"warning:truncated": 1}
    assert [(w["collection"], w["key"], w["kind"]) for w in planned.warnings] == [
        ("posts", "p2", "truncated")
    ]
    assert planned.as_dict()["warnings"] == planned.warnings
    assert stored(path) == []

    # Once run, a plan of the fixed source says the warning would go.
    await run(path)
    write_csv(tmp_path / "posts.csv", POST_HEADER, [post("p1"), post("p2", title="Short")])
    replanned = await run_job(load_job(path), dry_run=True)

    assert warning_counts(replanned.collections["posts"]) == {}
    assert [w.key for _, w in stored(path)] == ["p2"]


async def test_the_cli_lists_warnings_in_every_format_and_status_counts_them(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, [post("p1"), post("p2", title=LONG_TITLE)])
    plan = await run_cli_async("plan", str(path), cwd=tmp_path)
    assert "posts p2 would warn truncated (name)" in plan.stdout, plan.output
    await run(path)

    as_json = await run_cli_async("warnings", str(path), "--format", "json", cwd=tmp_path)
    as_csv = await run_cli_async("warnings", str(path), "--format", "csv", cwd=tmp_path)
    as_table = await run_cli_async("warnings", str(path), cwd=tmp_path)
    status = await run_cli_async("status", str(path), cwd=tmp_path)

    assert as_json.returncode == 0, as_json.output
    [row] = json.loads(as_json.stdout)
    assert (row["collection"], row["key"], row["field"], row["kind"]) == (
        "posts",
        "p2",
        "name",
        "truncated",
    )
    assert as_csv.stdout.splitlines()[0] == "collection,key,field,kind,excerpt,updated_at"
    assert as_csv.stdout.splitlines()[1].startswith("posts,p2,name,truncated,")
    assert "1 warning\n" in as_table.stdout, as_table.output
    assert "posts warnings: truncated 1" in status.stdout, status.output
