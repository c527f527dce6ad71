"""The library: jobs from a dict or TOML text, the sync wrappers, typed per-item errors and
warnings, and progress callbacks, against the embedded sandbox."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import flowport
from flowport.pipeline.logging import NullSink
from tests.conftest import run_cli
from tests.engine.test_damaged_log import damaged_job  # noqa: F401 (a fixture)
from tests.state_backends import StateBackend

JOB_TOML = textwrap.dedent(
    """
    [destination]
    api = "sandbox"
    rate_limit = 100000

    [collections.posts]
    target = "Posts"
    create_missing = true
    source = { type = "csv", path = "data/posts.csv", key = "id" }
    slug_from = "name"
    fields = { name = "title", summary = "summary" }
    schema = { singular_name = "Post", fields = { summary = "PlainText" } }
    """
)

#: p2 has no title (a per-item error); p3's is longer than a name may be (cut: a warning).
ROWS = f"id,title,summary\np1,Hello,short\np2,,no title here\np3,{'W' * 300},long\n"


def job_dict() -> dict[str, Any]:
    return {
        "destination": {"api": "sandbox", "rate_limit": 100_000},
        "collections": {
            "posts": {
                "target": "Posts",
                "create_missing": True,
                "source": {"type": "csv", "path": "data/posts.csv", "key": "id"},
                "slug_from": "name",
                "fields": {"name": "title", "summary": "summary"},
                "schema": {"singular_name": "Post", "fields": {"summary": "PlainText"}},
            }
        },
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "posts.csv").write_text(ROWS, encoding="utf-8")
    return tmp_path


def test_a_job_from_a_dict_reads_its_paths_from_base_dir_and_keeps_state_under_its_name(
    base: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(elsewhere)  # the current directory plays no part once base_dir is given
    job = flowport.job_from_dict(job_dict(), base_dir=base, name="blog")
    assert (job.name, job.base_dir, job.state_dir) == ("blog", base, base / "blog")

    summary = flowport.run_sync(job)
    assert summary.job == "blog"
    assert summary.collections["posts"] == {"created": 2, "failed": 1, "warning:truncated": 1}
    assert (base / "blog" / "checkpoint.sqlite").exists()
    assert list(elsewhere.iterdir()) == []
    # The same job again, as TOML text: the same state, so nothing is sent again.
    again = flowport.run_sync(flowport.job_from_toml(JOB_TOML, base_dir=base, name="blog"))
    assert again.collections["posts"].get("unchanged") == 2
    assert again.collections["posts"].get("created") is None


def test_base_dir_defaults_to_the_current_directory_and_state_dir_may_be_given(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(base)
    job = flowport.job_from_toml(JOB_TOML, state_dir="state/nightly")
    assert (job.name, job.base_dir, job.state_dir) == ("nightly", base, base / "state/nightly")


def test_a_job_without_a_file_needs_a_state_folder() -> None:
    with pytest.raises(flowport.ConfigError) as caught:
        flowport.job_from_dict(job_dict())
    assert "needs a state folder" in str(caught.value)
    assert "fix: pass name='shop'" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "edit", "key", "fix"),
    [
        (
            lambda d: d["collections"]["posts"]["source"].update(paht="x.csv"),
            ('key = "id" }', 'key = "id", paht = "x.csv" }'),
            "collections.posts.source.paht",
            "did you mean 'path'?",
        ),
        (
            lambda d: d["destination"].update(concurrency=100),
            ('api = "sandbox"', 'api = "sandbox"\nconcurrency = 100'),
            "destination.concurrency",
            "set concurrency to a value from 1 to 64",
        ),
    ],
)
def test_a_dict_job_gets_the_job_files_messages(
    base: Path, change: Any, edit: tuple[str, str], key: str, fix: str
) -> None:
    data = job_dict()
    change(data)
    with pytest.raises(flowport.JobFileError) as from_dict:
        flowport.job_from_dict(data, base_dir=base, name="blog")
    message = str(from_dict.value)
    assert message.startswith(f"job 'blog' (a dict): {key}: ")
    assert f"\n  fix: {fix}" in message
    # The same problem in a job file: the same words after the file's name.
    path = base / "blog.toml"
    path.write_text(JOB_TOML.replace(*edit), encoding="utf-8")
    with pytest.raises(flowport.JobFileError) as from_file:
        flowport.load_job(path)
    assert str(from_file.value).removeprefix(f"{path}: ") == message.removeprefix(
        "job 'blog' (a dict): "
    )


def test_toml_text_errors_name_the_line(base: Path) -> None:
    with pytest.raises(flowport.JobFileError, match=r"job 'x' \(TOML text\): TOML syntax"):
        flowport.job_from_toml("[destination\n", base_dir=base, name="x")


async def test_the_sync_wrappers_refuse_to_run_inside_an_event_loop(base: Path) -> None:
    job = flowport.job_from_dict(job_dict(), base_dir=base, name="blog")
    for call in (flowport.run_sync, flowport.plan_sync, flowport.validate_sync):
        with pytest.raises(RuntimeError, match=r"inside a running event loop; use `await"):
            call(job)
    assert not (base / "blog").exists()  # refused before anything was created


def test_plan_and_validate_sync(base: Path) -> None:
    job = flowport.job_from_dict(job_dict(), base_dir=base, name="blog")
    assert flowport.validate_sync(job) == []
    planned = flowport.plan_sync(job)
    assert planned.dry_run
    assert planned.collections["posts"]["would_create"] == 2
    assert not (base / "blog").exists()


def test_item_errors_and_warnings_are_typed_and_match_the_command_line(base: Path) -> None:
    path = base / "blog.toml"
    path.write_text(JOB_TOML, encoding="utf-8")
    assert flowport.item_errors(path) == []  # never ran: nothing to read, nothing created
    assert not (base / "blog").exists()
    flowport.run_sync(path)

    [error] = flowport.item_errors(path)
    assert isinstance(error, flowport.ItemError)
    assert (error.collection, error.key, error.field, error.state) == (
        "posts",
        "p2",
        "name",
        "failed",
    )
    assert error.reason
    [warning] = flowport.item_warnings(path)
    assert isinstance(warning, flowport.StandingWarning)
    assert (warning.collection, warning.key, warning.field, warning.kind) == (
        "posts",
        "p3",
        "name",
        "truncated",
    )
    for command, rows in (("errors", [error]), ("warnings", [warning])):
        listed = run_cli(command, str(path), "--format", "json", cwd=base)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == [
            {name: getattr(row, name) for name in row.__dataclass_fields__} for row in rows
        ]


def test_on_progress_gets_typed_events_through_every_phase(base: Path) -> None:
    data = job_dict()
    data["run"] = {"mode": "staged"}
    job = flowport.job_from_dict(data, base_dir=base, name="blog")
    events: list[flowport.ProgressEvent] = []
    summary = flowport.run_sync(job, on_progress=events.append)
    assert summary.exit_code == 1  # p2 has no title

    assert {e.collection for e in events} == {"posts"}
    phases = [e.phase for e in events]
    # In order, each at least once; a phase never comes back once left.
    order = ["setup", "read", "write", "publish", "finish"]
    assert list(dict.fromkeys(phases)) == order, phases
    assert phases == sorted(phases, key=order.index), phases
    publishing = [e for e in events if e.phase == "publish"]
    assert publishing[-1].steps == (2, 2)
    last = events[-1]
    assert (last.phase, last.done, last.failed, last.total) == ("finish", 2, 1, 3)
    assert last.requests > 0
    assert last.requests <= summary.requests
    # Nothing is written in the first seconds: no rate yet, rather than an absurd one.
    assert all(e.items_per_minute is None for e in events)


def test_on_progress_is_bounded_in_rate(base: Path) -> None:
    rows = "".join(f"r{n},Title {n},s\n" for n in range(600))
    (base / "data" / "posts.csv").write_text("id,title,summary\n" + rows, encoding="utf-8")
    job = flowport.job_from_dict(job_dict(), base_dir=base, name="many")
    events: list[flowport.ProgressEvent] = []
    summary = flowport.run_sync(job, on_progress=events.append, progress_interval=3600)
    assert summary.collections["posts"]["created"] == 600
    # 6 batches were written; with an hour between reports, only the phase changes, the end
    # of the setup's steps (the collection created) and the end are told.
    assert [e.phase for e in events] == ["setup", "setup", "read", "write", "finish"], events
    assert [e.steps for e in events[:2]] == [(0, 1), (1, 1)]
    assert events[-1].done == 600


async def test_progress_and_on_progress_are_one_or_the_other(base: Path) -> None:
    job = flowport.job_from_dict(job_dict(), base_dir=base, name="blog")
    with pytest.raises(TypeError, match="not both"):
        await flowport.run(job, progress=NullSink(), on_progress=print)
    assert not (base / "blog").exists()


def test_item_errors_of_a_log_damaged_in_the_middle_name_the_file_and_the_way_out(
    damaged_job: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    log = damaged_job.parent / "job" / "checkpoint.sqlite"
    with pytest.raises(flowport.FatalError) as caught:
        flowport.item_errors(damaged_job)
    assert f"the checkpoint log {log} cannot be read" in str(caught.value)
    assert "restore it from a backup" in str(caught.value)


@pytest.mark.postgres
def test_item_errors_and_warnings_read_a_log_kept_in_postgresql(
    base: Path, postgres_state: StateBackend
) -> None:
    path = base / "blog.toml"
    path.write_text(postgres_state.toml() + JOB_TOML, encoding="utf-8")
    assert flowport.item_errors(path) == []  # no state yet, and none created by asking
    assert not postgres_state.has_state(path)
    flowport.run_sync(path)
    assert not (base / "blog" / "checkpoint.sqlite").exists()
    assert [(e.key, e.field) for e in flowport.item_errors(path)] == [("p2", "name")]
    assert [(w.key, w.kind) for w in flowport.item_warnings(path)] == [("p3", "truncated")]
