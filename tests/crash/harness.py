"""What the crash tests share: a sandbox in its own process, a generated job, the CLI as a real
process, and one check of the end state (the sandbox and the checkpoint log agree with the source).

Everything here is synchronous on purpose: the processes under test are real, and the test only
starts them, kills them and reads what they left behind.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.sandbox.process import SandboxProcess
from flowport.pipeline.sandbox.process import sandbox_process as shared_sandbox_process
from flowport.pipeline.state import open_job_log
from tests.conftest import cli_command, cli_env
from tests.state_backends import StateBackend

__all__ = [
    "EXIT_ABORTED",
    "EXIT_FAILED_ITEMS",
    "EXIT_OK",
    "KILLED",
    "TOKEN_ENV",
    "Dataset",
    "SandboxProcess",
    "check_error_rows",
    "error_rows",
    "kill_after",
    "log_counts",
    "make_dataset",
    "open_log",
    "run_flowport",
    "run_until_done",
    "sandbox_process",
    "start_flowport",
    "summary_of",
    "verify_end_state",
    "write_job",
]

TOKEN_ENV = "CRASH_TEST_WEBFLOW_TOKEN"
_TOKEN = "crash-test-token-3f9a1c"

EXIT_OK = 0
EXIT_FAILED_ITEMS = 1
EXIT_ABORTED = 3
#: A process killed by SIGKILL, as subprocess reports it.
KILLED = -signal.SIGKILL

CATEGORIES = ("Engineering", "Design", "Product", "Culture")


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # A crash point set in the test's own environment would strike every child: only `extra`
    # sets one.
    env = cli_env({TOKEN_ENV: _TOKEN})
    env.pop("FLOWPORT_CRASH_AT", None)
    return {**env, **(extra or {})}


# ---- the sandbox, in its own process ------------------------------------------------------------


@contextmanager
def sandbox_process(
    *, seed: int, rate_limit: int = 100_000, window_seconds: float = 60.0, **faults: float | int
) -> Iterator[SandboxProcess]:
    """``python -m flowport.pipeline.sandbox --port 0``; faults as keyword options
    (``slow_rate=0.5``)."""
    with shared_sandbox_process(
        token=_TOKEN,
        seed=seed,
        rate_limit=rate_limit,
        window_seconds=window_seconds,
        options=faults,
        env=_env(),
    ) as sandbox:
        yield sandbox


# ---- the source and the job ---------------------------------------------------------------------


@dataclass
class Dataset:
    """What the source holds and what each record must become."""

    #: collection -> source key -> expected field values (``author`` holds the author's key).
    good: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: collection -> source key -> a word the failure's reason must contain.
    bad: dict[str, dict[str, str]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.good.values())


def make_dataset(
    folder: Path, *, authors: int, posts: int, bad_share: float = 0.0, seed: int = 0
) -> Dataset:
    """Write authors.csv and posts.csv; ``bad_share`` of the rows are deliberately bad."""
    rng = random.Random(seed)
    # Kinds of bad rows take turns, so even a few bad rows show each kind.
    author_faults = itertools.cycle(("email", "name"))
    post_faults = itertools.cycle(("option", "reference", "duplicate"))
    data = Dataset(good={"authors": {}, "posts": {}}, bad={"authors": {}, "posts": {}})
    author_rows: list[dict[str, str]] = []
    for n in range(1, authors + 1):
        key = f"a{n:05d}"
        row = {"id": key, "name": f"Author {n} Ünlü", "email": f"author{n}@example.com"}
        if rng.random() < bad_share:
            kind = next(author_faults)
            if kind == "email":
                row["email"] = f"author{n}-at-example"
                data.bad["authors"][key] = "email"
            else:
                row["name"] = ""
                data.bad["authors"][key] = "name"
        else:
            data.good["authors"][key] = {"name": row["name"], "email": row["email"]}
        author_rows.append(row)
    good_authors = sorted(data.good["authors"])
    post_rows: list[dict[str, str]] = []
    for n in range(1, posts + 1):
        key = f"p{n:06d}"
        author = good_authors[n % len(good_authors)]
        row = {
            "id": key,
            "title": f"Post {n}: notes on crash safety",
            "author_id": author,
            "category": CATEGORIES[n % len(CATEGORIES)],
            "reading_time": str(n % 17 + 1),
        }
        expected: dict[str, Any] | None = {
            "name": row["title"],
            "author": author,
            "category": row["category"],
            "reading-time": n % 17 + 1,
        }
        if rng.random() < bad_share:
            kind = next(post_faults)
            if kind == "option":
                row["category"] = "Astrology"
                data.bad["posts"][key] = "Astrology"
                expected = None
            elif kind == "reference":
                row["author_id"] = "a99999"
                data.bad["posts"][key] = "a99999"
                expected = None
            elif post_rows and post_rows[-1]["id"] in data.good["posts"]:
                # A second row with an earlier key: the first one wins, this one is reported.
                duplicate = dict(row, id=post_rows[-1]["id"], title=f"Duplicate of {n}")
                post_rows.append(duplicate)
                data.bad["posts"][f"duplicate:{n}"] = f"duplicate key '{duplicate['id']}'"
        if expected is not None:
            data.good["posts"][key] = expected
        post_rows.append(row)
    # Bad authors may have been picked as no one's author above, so no post depends on them.
    _write_csv(folder / "authors.csv", author_rows)
    _write_csv(folder / "posts.csv", post_rows)
    return data


def _write_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_job(
    folder: Path,
    sandbox: SandboxProcess,
    *,
    name: str = "crash",
    mode: str = "live",
    rate_limit: int = 100_000,
    window_seconds: float = 60.0,
    concurrency: int = 4,
    batch_size: int = 100,
    timeout_seconds: float = 30.0,
    state: StateBackend | None = None,
) -> Path:
    categories = ", ".join(f'"{c}"' for c in CATEGORIES)
    job = folder / f"{name}.toml"
    job.write_text(
        (state.toml() if state is not None else "")
        + textwrap.dedent(
            f"""
            [destination]
            api = "{sandbox.base_url}"
            site_id = "{sandbox.site_id}"
            token_env = "{TOKEN_ENV}"
            rate_limit = {rate_limit}
            rate_window_seconds = {window_seconds}
            concurrency = {concurrency}
            timeout_seconds = {timeout_seconds}

            [run]
            mode = "{mode}"
            batch_size = {batch_size}

            [collections.authors]
            target = "Authors"
            create_missing = true
            external_key_field = "source-key"
            source = {{ type = "csv", path = "authors.csv", key = "id" }}
            slug_from = "name"
            fields = {{ name = "name", source-key = "id", email = "email" }}

            [collections.authors.schema]
            singular_name = "Author"
            fields = {{ source-key = "PlainText", email = "Email" }}

            [collections.posts]
            target = "Posts"
            create_missing = true
            external_key_field = "source-key"
            source = {{ type = "csv", path = "posts.csv", key = "id" }}
            slug_from = "name"

            [collections.posts.fields]
            name = "title"
            source-key = "id"
            author = {{ source = "author_id", reference = "authors" }}
            category = "category"
            reading-time = {{ source = "reading_time", transforms = ["number"] }}

            [collections.posts.schema]
            singular_name = "Post"

            [collections.posts.schema.fields]
            source-key = "PlainText"
            author = {{ type = "Reference", collection = "authors" }}
            category = {{ type = "Option", options = [{categories}] }}
            reading-time = {{ type = "Number", name = "Reading Time" }}
            """
        ),
        encoding="utf-8",
    )
    return job


# ---- the CLI as a real process ------------------------------------------------------------------


def _command(job: Path) -> list[str]:
    return cli_command("run", str(job), "--log-format", "json", "-q")


def run_flowport(
    job: Path,
    *,
    crash_at: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    extra = {"FLOWPORT_CRASH_AT": crash_at} if crash_at else {}
    extra.update(env or {})
    return subprocess.run(
        _command(job),
        cwd=job.parent,
        env=_env(extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_flowport(job: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(job),
        cwd=job.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def kill_after(job: Path, delay: float) -> int:
    """Start a run and SIGKILL it from outside after ``delay`` seconds; its exit code."""
    process = start_flowport(job)
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        return process.wait()


def run_until_done(
    job: Path, *, expected_exit: int, attempts: int = 4
) -> list[subprocess.CompletedProcess[str]]:
    """Rerun without any crash until the run ends on its own; every exit code must be a stable
    one (0/1/3). An item whose outcome stayed unknown is retried by the next run, so a run that
    exits 1 for that reason is followed by another."""
    runs: list[subprocess.CompletedProcess[str]] = []
    for _ in range(attempts):
        result = run_flowport(job)
        runs.append(result)
        assert result.returncode in (EXIT_OK, EXIT_FAILED_ITEMS, EXIT_ABORTED), _explain(result)
        if result.returncode == expected_exit and summary_of(result).get("exit_code") == (
            expected_exit
        ):
            return runs
    raise AssertionError(
        f"no rerun ended with exit {expected_exit} after {attempts} tries: "
        + "; ".join(_explain(r) for r in runs)
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    for line in reversed(result.stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "run_finished":
            return event
    return {}


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}; summary {summary_of(result)}; stderr {result.stderr[-2000:]}"


# ---- the end state ------------------------------------------------------------------------------


def verify_end_state(sandbox: SandboxProcess, job: Path, data: Dataset, *, mode: str) -> None:
    """Every good record exactly once in the sandbox with its values; the log agrees."""
    state = sandbox.state()
    by_name = {c["displayName"]: c for c in state["collections"]}
    assert set(by_name) == {"Authors", "Posts"}, sorted(by_name)
    log = open_log(job)
    try:
        ids: dict[str, dict[str, str]] = {}
        for name, display in (("authors", "Authors"), ("posts", "Posts")):
            ids[name] = _check_collection(by_name[display], name, data, log, mode=mode)
        check_error_rows(
            [
                {
                    "collection": e.collection,
                    "key": e.key,
                    "field": e.error_field,
                    "reason": e.last_error,
                    "state": e.state,
                }
                for e in log.errors()
            ],
            data,
        )
        for key, expected in data.good["posts"].items():
            item_id = ids["posts"][key]
            author_id = ids["authors"][expected["author"]]
            fields = _items_by_id(by_name["Posts"])[item_id]["fieldData"]
            assert fields.get("author") == author_id, (key, fields.get("author"), author_id)
    finally:
        log.close()


def _items_by_id(collection: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in collection["items"]}


def _check_collection(
    collection: Mapping[str, Any], name: str, data: Dataset, log: CheckpointLog, *, mode: str
) -> dict[str, str]:
    items = collection["items"]
    slugs = Counter(item["fieldData"].get("slug") for item in items)
    keys = Counter(item["fieldData"].get("source-key") for item in items)
    duplicated_slugs = {s: n for s, n in slugs.items() if n > 1}
    duplicated_keys = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated_slugs, f"{name}: slugs written more than once: {duplicated_slugs}"
    assert not duplicated_keys, f"{name}: source keys written more than once: {duplicated_keys}"
    good = data.good[name]
    assert set(keys) == set(good), (
        f"{name}: missing {sorted(set(good) - set(keys))[:10]}, "
        f"unexpected {sorted(set(keys) - set(good))[:10]}"
    )
    options = _option_names(collection)
    by_key = {item["fieldData"]["source-key"]: item for item in items}
    live_ids = {item["id"] for item in collection["liveItems"]}
    for key, expected in good.items():
        fields = by_key[key]["fieldData"]
        for slug, value in expected.items():
            if slug == "author":
                continue  # checked against the author's id by the caller
            actual = (
                options.get(fields.get(slug), fields.get(slug))
                if slug == "category"
                else (fields.get(slug))
            )
            assert actual == value, f"{name} {key}: {slug} is {actual!r}, expected {value!r}"
    if mode in ("live", "staged"):
        not_live = [k for k, item in by_key.items() if item["id"] not in live_ids]
        assert not not_live, f"{name}: not published: {not_live[:10]}"
    states = log.lookup(name, sorted(good))
    wrong = {
        key: (s.state if (s := states.get(key)) else None, s.webflow_id if s else None)
        for key in good
        if (s := states.get(key)) is None or s.state != "done" or s.webflow_id != by_key[key]["id"]
    }
    assert not wrong, f"{name}: the log disagrees with the sandbox on {len(wrong)}: {_head(wrong)}"
    return {key: item["id"] for key, item in by_key.items()}


def check_error_rows(rows: Sequence[Mapping[str, Any]], data: Dataset) -> None:
    """Every bad record is reported as failed, with a reason that names what is wrong; nothing
    else is (a duplicate row is reported under its line, naming the key)."""
    failed = [row for row in rows if row["state"] == "failed"]
    for collection, bad in data.bad.items():
        mine = [row for row in failed if row["collection"] == collection]
        by_key = {row["key"]: row for row in mine}
        for key, word in bad.items():
            if key.startswith("duplicate:"):
                assert any(word in (row["reason"] or "") for row in mine), (collection, word)
                continue
            row = by_key.get(key)
            assert row is not None, f"{collection} {key}: not reported as failed"
            reason = (row["reason"] or "").lower()
            assert reason, f"{collection} {key}: failed without a reason"
            assert word.lower() in reason or word == row["field"], (collection, key, word, row)
        assert len(mine) == len(bad), (
            f"{collection}: {len(mine)} failed rows for {len(bad)} bad records: "
            f"{sorted(set(by_key) - set(bad))[:10]}"
        )


def _option_names(collection: Mapping[str, Any]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for definition in collection.get("fields", []):
        for option in (definition.get("validations") or {}).get("options") or []:
            names[option["id"]] = option["name"]
    return names


def _head(mapping: Mapping[str, Any], n: int = 5) -> dict[str, Any]:
    return dict(list(mapping.items())[:n])


def open_log(job: Path) -> CheckpointLog:
    """The job's checkpoint log, on whichever backend its job file names."""
    log = open_job_log(load_job(job), create=False)
    assert log is not None, f"{job}: no checkpoint log"
    return log


def log_counts(job: Path) -> dict[str, int]:
    """Items per state in the job's checkpoint log, over all collections."""
    log = open_job_log(load_job(job), create=False)
    if log is None:
        return {}
    try:
        totals: Counter[str] = Counter()
        for per in log.counts().values():
            totals.update(per)
        return dict(totals)
    finally:
        log.close()


def error_rows(job: Path) -> list[dict[str, Any]]:
    """``flowport errors JOB --format json``, parsed."""
    result = subprocess.run(
        [sys.executable, "-m", "flowport.pipeline.cli", "errors", str(job), "--format", "json"],
        cwd=job.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows
