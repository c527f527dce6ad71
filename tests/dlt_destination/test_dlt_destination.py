"""flowport's dlt destination end to end: a real dlt pipeline loading into a real sandbox.

dlt keeps its pipelines (and their pending load packages) under ``pipelines_dir`` and its
global files under ``DLT_DATA_DIR``: both are in the test's tmp_path, so parallel sessions
never share a package. ``pipeline.run`` blocks; it runs in a worker thread, so the sandbox,
which serves from the test's event loop, keeps answering.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import dlt
import pytest
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.pipeline.exceptions import PipelineStepFailed

from flowport.base.errors import ConfigError
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.dlt_destination import WebflowItemErrors, flowport_webflow
from flowport.pipeline.logging import NullSink
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from tests.conftest import TOKEN, cli_env, run_cli_async
from tests.engine.test_readme_examples import REPO, code_block

ROWS = 25


def job_text(sandbox: Sandbox) -> str:
    return f"""
[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000
concurrency = 1

[run]
batch_size = 10

[collections.products]
target = "Products"
create_missing = true
source = {{ type = "dlt" }}
# A load brings only some rows: even told to delete, a run must not take the others as gone.
deletions = "delete"
max_delete_share = 1.0
schema = {{ singular_name = "Product", fields = {{ price = "Number", in-stock = "Switch", released = "DateTime", specs = "PlainText", contact = "Email" }} }}

[collections.products.fields]
name = "title"
slug = "sku"
price = "price"
in-stock = "in_stock"
released = "released"
specs = {{ source = "specs.material" }}
contact = "contact"
"""  # noqa: E501


def product_rows(count: int = ROWS) -> list[dict[str, Any]]:
    return [
        {
            "sku": f"sku-{n:03d}",
            "title": f"Product {n}",
            "price": 10 + n / 2,
            "in_stock": n % 2 == 0,
            "released": f"2024-03-{n % 28 + 1:02d}T09:00:00+00:00",
            "specs": {"material": "steel" if n % 3 else "oak", "sizes": [n, n + 1]},
            "contact": f"sales+{n}@example.com",
        }
        for n in range(1, count + 1)
    ]


def products_resource(rows: list[dict[str, Any]]) -> Any:
    @dlt.resource(name="products", primary_key="sku", write_disposition="merge")
    def products() -> Iterator[dict[str, Any]]:
        yield from rows

    return products()


@pytest.fixture
def dlt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dlt's folders in tmp_path, no telemetry, no config read from the working folder."""
    home = tmp_path / "dlt-home"
    monkeypatch.setenv("DLT_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def job_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    path = tmp_path / "shop.toml"
    path.write_text(job_text(sandbox), encoding="utf-8")
    return path


def make_pipeline(job_file: Path, dlt_home: Path, progress: Any = None) -> Any:
    return dlt.pipeline(
        pipeline_name="shop",
        pipelines_dir=str(dlt_home / "pipelines"),
        destination=flowport_webflow(job_file, progress=progress),
        dataset_name="shop",
    )


async def run_pipeline(pipeline: Any, data: Any = None) -> Any:
    return await anyio.to_thread.run_sync(lambda: pipeline.run(data))


def live_items(sandbox: Sandbox) -> list[dict[str, Any]]:
    (found,) = [
        c for c in sandbox.core.dump_state()["collections"] if c["displayName"] == "Products"
    ]
    return [item["fieldData"] for item in found["liveItems"]]


def writes(sandbox: Sandbox) -> int:
    return int(sandbox.stats()["totals"]["writes"])


async def test_a_load_creates_the_items_and_a_rerun_sends_nothing(
    sandbox: Sandbox, job_file: Path, dlt_home: Path
) -> None:
    pipeline = make_pipeline(job_file, dlt_home)
    info = await run_pipeline(pipeline, products_resource(product_rows()))
    assert not info.has_failed_jobs

    items = {item["slug"]: item for item in live_items(sandbox)}
    assert len(items) == ROWS
    assert items["sku-004"] == {
        "name": "Product 4",
        "slug": "sku-004",
        "price": 12,
        "in-stock": True,
        "released": "2024-03-05T09:00:00.000Z",
        "specs": "steel",
        "contact": "sales+4@example.com",
    }
    assert items["sku-003"]["specs"] == "oak"
    assert items["sku-003"]["in-stock"] is False

    before = writes(sandbox)
    again = await run_pipeline(pipeline, products_resource(product_rows()))
    assert not again.has_failed_jobs
    assert writes(sandbox) == before
    log = CheckpointLog.open(job_file.parent / "shop" / "checkpoint.sqlite")
    try:
        assert log.counts()["products"] == {"done": ROWS}
    finally:
        log.close()

    # A changed row, with new ones: only those are written; nothing is removed.
    changed = product_rows(ROWS + 2)[-3:]
    changed[0]["title"] = "Renamed"
    await run_pipeline(pipeline, products_resource(changed))
    assert writes(sandbox) == before + 2  # one update batch, one create batch
    items = {item["slug"]: item for item in live_items(sandbox)}
    assert len(items) == ROWS + 2
    assert items[changed[0]["sku"]]["name"] == "Renamed"


LOADER = """
import json, sys
import dlt
from flowport.pipeline.dlt_destination import flowport_webflow

job, pipelines_dir, rows = sys.argv[1:4]
rows = json.loads(open(rows, encoding="utf-8").read())

@dlt.resource(name="products", primary_key="sku", write_disposition="merge")
def products():
    yield from rows

pipeline = dlt.pipeline(
    pipeline_name="shop", pipelines_dir=pipelines_dir,
    destination=flowport_webflow(job), dataset_name="shop",
)
pipeline.run(products())
print("loaded")
"""


async def test_a_load_killed_mid_way_is_finished_by_the_next_run_without_duplicates(
    sandbox: Sandbox, job_file: Path, dlt_home: Path, tmp_path: Path
) -> None:
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(product_rows()), encoding="utf-8")
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(LOADER), encoding="utf-8")
    # Killed once Webflow has applied the second batch of ten, before the checkpoint knew.
    env = cli_env(
        {
            "FLOWPORT_TEST_TOKEN": TOKEN,
            "FLOWPORT_CRASH_AT": "after-answer:2",
            "DLT_DATA_DIR": str(dlt_home / "data"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
        }
    )
    with anyio.fail_after(120):
        killed = await anyio.run_process(
            [
                sys.executable,
                str(script),
                str(job_file),
                str(dlt_home / "pipelines"),
                str(rows_file),
            ],
            cwd=tmp_path,
            env=env,
            check=False,
        )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert b"loaded" not in killed.stdout
    assert len(live_items(sandbox)) == 20

    # The next run of the pipeline finds the package pending and loads it to its end.
    pipeline = make_pipeline(job_file, dlt_home)
    assert pipeline.has_pending_data
    info = await run_pipeline(pipeline)
    assert info is not None
    assert not info.has_failed_jobs
    slugs = [item["slug"] for item in live_items(sandbox)]
    assert sorted(slugs) == sorted(row["sku"] for row in product_rows())  # each key once
    assert not pipeline.has_pending_data


class BreakAfterFirstBatch(NullSink):
    """Once the first batch is written, every request to the sandbox fails: the run stops
    mid-load. Called in the run's own event loop (a dlt worker thread), it sets the faults in
    the sandbox's loop and waits for that, so the next batch already meets them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.token = anyio.lowlevel.current_token()
        self.broken = False

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        if done and not self.broken:
            self.broken = True
            faults = FaultConfig(error_rate=1.0)
            anyio.from_thread.run_sync(self.sandbox.set_faults, faults, token=self.token)


async def test_a_load_that_fails_mid_way_is_retried_and_finished_by_the_next_run(
    sandbox: Sandbox, job_file: Path, dlt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dlt gives up after two tries of the job (five by default) and keeps the package.
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "2")
    # The run stops at its first wait instead of backing off for minutes.
    text = job_text(sandbox).replace(
        "batch_size = 10", "batch_size = 10\nmax_total_wait_seconds = 0"
    )
    await anyio.Path(job_file).write_text(text, encoding="utf-8")
    pipeline = make_pipeline(job_file, dlt_home, progress=BreakAfterFirstBatch(sandbox))
    with pytest.raises(PipelineStepFailed) as raised:
        await run_pipeline(pipeline, products_resource(product_rows()))
    assert "the flowport run of dlt table 'products' into 'products' stopped" in str(raised.value)
    assert "had 2 retries" in str(raised.value)
    assert len(live_items(sandbox)) == 10
    assert pipeline.has_pending_data

    sandbox.set_faults(FaultConfig())
    info = await run_pipeline(make_pipeline(job_file, dlt_home))
    assert not info.has_failed_jobs
    slugs = [item["slug"] for item in live_items(sandbox)]
    assert sorted(slugs) == sorted(row["sku"] for row in product_rows())  # each key once


async def test_a_bad_row_is_a_per_item_error_naming_it_and_the_others_are_written(
    sandbox: Sandbox, job_file: Path, dlt_home: Path
) -> None:
    rows = product_rows(5)
    rows[2]["contact"] = "sales at example.com"  # not an address: the Email field refuses it
    pipeline = make_pipeline(job_file, dlt_home)
    with pytest.raises(PipelineStepFailed) as raised:
        await run_pipeline(pipeline, products_resource(rows))
    message = str(raised.value)
    assert "1 row of dlt table 'products' was not written" in message
    assert "sku-003:" in message
    cause = raised.value.__cause__
    while cause is not None and not isinstance(cause, WebflowItemErrors):
        cause = cause.__cause__
    assert isinstance(cause, WebflowItemErrors)
    assert [key for key, _ in cause.errors] == ["sku-003"]
    assert sorted(item["slug"] for item in live_items(sandbox)) == [
        "sku-001",
        "sku-002",
        "sku-004",
        "sku-005",
    ]

    # Fixed and loaded again: the fixed row is created, the others are not sent again.
    pipeline.abort_packages()
    before = writes(sandbox)
    rows[2]["contact"] = "sales@example.com"
    info = await run_pipeline(pipeline, products_resource(rows))
    assert not info.has_failed_jobs
    assert writes(sandbox) == before + 1
    assert len(live_items(sandbox)) == 5


async def test_a_table_no_collection_takes_fails_the_load_naming_it(
    sandbox: Sandbox, job_file: Path, dlt_home: Path
) -> None:
    pipeline = make_pipeline(job_file, dlt_home)
    with pytest.raises(PipelineStepFailed, match=r"takes the dlt table 'orders'"):
        await run_pipeline(pipeline, dlt.resource([{"id": 1}], name="orders", primary_key="id"))
    assert writes(sandbox) == 0


async def test_a_table_without_a_key_fails_the_load_saying_how_to_give_one(
    sandbox: Sandbox, job_file: Path, dlt_home: Path
) -> None:
    pipeline = make_pipeline(job_file, dlt_home)
    rows = dlt.resource(product_rows(3), name="products")  # no primary_key
    with pytest.raises(PipelineStepFailed, match=r"has no primary key and the job names no key"):
        await run_pipeline(pipeline, rows)
    assert writes(sandbox) == 0

    # The job's key serves instead.
    pipeline.abort_packages()
    await anyio.Path(job_file).write_text(
        job_text(sandbox).replace('{ type = "dlt" }', '{ type = "dlt", key = "sku" }'),
        encoding="utf-8",
    )
    info = await run_pipeline(make_pipeline(job_file, dlt_home), rows)
    assert not info.has_failed_jobs
    assert len(live_items(sandbox)) == 3


async def test_a_table_goes_to_the_collection_that_names_it_or_to_the_one_given(
    sandbox: Sandbox, job_file: Path, dlt_home: Path
) -> None:
    await anyio.Path(job_file).write_text(
        job_text(sandbox).replace('{ type = "dlt" }', '{ type = "dlt", table = "catalog" }'),
        encoding="utf-8",
    )
    catalog = dlt.resource(product_rows(2), name="catalog", primary_key="sku")
    info = await run_pipeline(make_pipeline(job_file, dlt_home), catalog)
    assert not info.has_failed_jobs
    assert len(live_items(sandbox)) == 2

    pipeline = dlt.pipeline(
        pipeline_name="other",
        pipelines_dir=str(dlt_home / "pipelines"),
        destination=flowport_webflow(job_file, collection="products"),
    )
    more = dlt.resource(product_rows(4)[2:], name="anything", primary_key="sku")
    info = await run_pipeline(pipeline, more)
    assert not info.has_failed_jobs
    assert sorted(item["slug"] for item in live_items(sandbox)) == [
        "sku-001",
        "sku-002",
        "sku-003",
        "sku-004",
    ]


def test_a_collection_that_takes_no_dlt_table_is_refused_before_anything(
    job_file: Path,
) -> None:
    with pytest.raises(ConfigError, match="collection 'posts' does not take a dlt table"):
        flowport_webflow(job_file, collection="posts")


async def test_the_command_line_says_a_dlt_source_is_loaded_by_dlt(
    job_file: Path, sandbox: Sandbox
) -> None:
    for command in ("run", "plan", "validate"):
        result = await run_cli_async(command, str(job_file), cwd=job_file.parent)
        assert result.returncode == 2, (command, result.output)
        assert "products: a dlt source takes the rows a dlt pipeline loads" in result.stderr
        assert "destination=flowport_webflow(" in result.stderr
    # Refused before a request or a state folder.
    assert sandbox.stats()["totals"]["requests"] == 0
    assert not (job_file.parent / "shop").exists()


@pytest.mark.slow  # two processes, each paced by the embedded site's rate limit (120/min)
def test_the_readme_example_loads_its_rows_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## dlt destination\n")
    readme = text[start : text.index("\n## ", start + 1)]
    job = code_block(readme, "toml")
    job_path = job.splitlines()[0].removeprefix("# ")
    assert job_path == "runs/shop.toml"
    (tmp_path / "runs").mkdir()
    (tmp_path / job_path).write_text(job, encoding="utf-8")
    script = tmp_path / "example.py"
    script.write_text(code_block(readme, "python"), encoding="utf-8")
    env = cli_env(
        {"DLT_DATA_DIR": str(tmp_path / "dlt-home"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    )
    said = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        said.append([line for line in result.stderr.splitlines() if "dlt table" in line])
    assert said == [
        ["dlt table 'products' -> products: {'created': 3}"],
        ["dlt table 'products' -> products: {'unchanged': 3}"],
    ]


def test_a_load_file_that_is_not_json_lines_is_refused(job_file: Path, tmp_path: Path) -> None:
    # dlt writes parquet for this destination when a run asks for it (and pyarrow is there).
    destination = flowport_webflow(job_file)
    load = destination.config_params["destination_callable"]
    parquet = tmp_path / "products.1ebb9a11c8.0.parquet"
    parquet.write_bytes(b"PAR1")
    with pytest.raises(DestinationTerminalException, match=r"is not JSON lines(?s:.*)typed-jsonl"):
        load(str(parquet), {"name": "products", "columns": {}})


async def test_a_load_in_a_thread_that_runs_an_event_loop_still_runs(
    sandbox: Sandbox, job_file: Path, dlt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One loader worker: dlt loads in the calling thread, here one whose loop is running
    # (as in a notebook), so flowport's run needs a loop of its own elsewhere.
    monkeypatch.setenv("LOAD__WORKERS", "1")
    pipeline = make_pipeline(job_file, dlt_home)

    def load_inside_a_loop() -> Any:
        async def inside() -> Any:
            return pipeline.run(products_resource(product_rows(3)))

        return anyio.run(inside)

    info = await anyio.to_thread.run_sync(load_inside_a_loop)
    assert not info.has_failed_jobs
    assert len(live_items(sandbox)) == 3
