"""DataFrame sources end to end: ``flowport.run(job, sources=...)`` into a real sandbox, the
schema created from the frame's dtypes, and every way of not giving a frame."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import pandas as pd
import pytest

import flowport
from flowport.pipeline.sandbox import Sandbox
from tests.conftest import TOKEN, run_cli
from tests.engine.conftest import sandbox_stats

#: `notes` goes through a transform, so its type is not taken from the dtype: the job says it.
NOTES_SCHEMA = 'schema = { fields = { notes = "PlainText" } }\n'


def job_text(sandbox: Sandbox, *, schema: str = NOTES_SCHEMA) -> str:
    return f"""
[destination]
api = "{sandbox.base_url}"
site_id = "{sandbox.site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[collections.products]
target = "Products"
create_missing = true
source = {{ type = "dataframe", key = "sku" }}
slug_from = "name"
{schema}
[collections.products.fields]
name = "title"
price = "price"
in-stock = "in_stock"
released = "released"
stock = "stock"
notes = {{ source = "notes", transforms = ["trim"] }}

[collections.authors]
create_missing = true
source = {{ type = "csv", path = "authors.csv", key = "id" }}
slug_from = "name"
fields = {{ name = "name" }}
schema = {{ singular_name = "Author" }}
"""


def products() -> pd.DataFrame:
    released = pd.DatetimeIndex(
        [pd.Timestamp("2024-03-01 09:00"), pd.Timestamp("2024-06-15 18:30"), pd.NaT]
    )
    return pd.DataFrame(
        {
            "sku": ["K-1", "T-2", "M-3"],
            "title": ["Kettle", "Teapot", "Mug"],
            "price": [39.5, 24.0, math.nan],
            "in_stock": [True, False, True],
            "released": released.tz_localize("Europe/Paris"),
            "stock": pd.array([3, None, 12], dtype="Int64"),
            "notes": ["  boils fast ", None, "ceramic"],
        }
    )


@pytest.fixture
def job_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> Path:
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", TOKEN)
    (tmp_path / "authors.csv").write_text("id,name\na1,Zoë\n", encoding="utf-8")
    path = tmp_path / "shop.toml"
    path.write_text(job_text(sandbox), encoding="utf-8")
    return path


def collection_state(sandbox: Sandbox, name: str) -> dict[str, Any]:
    (found,) = [c for c in sandbox.core.dump_state()["collections"] if c["displayName"] == name]
    return dict(found)


async def writes(sandbox: Sandbox) -> int:
    return int((await sandbox_stats(sandbox))["totals"]["writes"])


async def test_a_run_creates_typed_fields_and_items_and_a_rerun_sends_nothing(
    sandbox: Sandbox, job_file: Path
) -> None:
    frame = products()
    summary = await flowport.run(job_file, sources={"products": frame})
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["products"] == {"created": 3}

    state = collection_state(sandbox, "Products")
    types = {field["slug"]: field["type"] for field in state["fields"]}
    # The types the job leaves unsaid come from the dtypes; `notes` is the job's.
    assert types == {
        "name": "PlainText",
        "slug": "PlainText",
        "price": "Number",
        "in-stock": "Switch",
        "released": "DateTime",
        "stock": "Number",
        "notes": "PlainText",
    }
    by_slug = {item["fieldData"]["slug"]: item["fieldData"] for item in state["liveItems"]}
    assert by_slug["kettle"] == {
        "name": "Kettle",
        "slug": "kettle",
        "price": 39.5,
        "in-stock": True,
        "released": "2024-03-01T08:00:00.000Z",
        "stock": 3,
        "notes": "boils fast",
    }
    # NaN, NaT and pd.NA are no value: the field is left out.
    assert by_slug["teapot"] == {
        "name": "Teapot",
        "slug": "teapot",
        "price": 24,
        "in-stock": False,
        "released": "2024-06-15T16:30:00.000Z",
    }
    assert "price" not in by_slug["mug"]
    assert "released" not in by_slug["mug"]

    before = await writes(sandbox)
    again = await flowport.run(job_file, sources={"products": products()})
    assert again.exit_code == 0, again.as_dict()
    assert again.collections["products"] == {"unchanged": 3}
    assert await writes(sandbox) == before


async def test_a_type_the_job_states_wins_over_the_dtype(sandbox: Sandbox, job_file: Path) -> None:
    stated = 'schema = { fields = { price = "PlainText", notes = "RichText" } }\n'
    await anyio.Path(job_file).write_text(job_text(sandbox, schema=stated), encoding="utf-8")
    summary = await flowport.run(job_file, sources={"products": products()})
    assert summary.exit_code == 0, summary.as_dict()
    types = {f["slug"]: f["type"] for f in collection_state(sandbox, "Products")["fields"]}
    assert types["price"] == "PlainText"
    assert types["notes"] == "RichText"
    assert types["in-stock"] == "Switch"
    (kettle,) = [
        i["fieldData"]
        for i in collection_state(sandbox, "Products")["liveItems"]
        if i["fieldData"]["slug"] == "kettle"
    ]
    assert kettle["price"] == "39.5"


async def test_a_transformed_field_left_unsaid_is_refused_before_any_write(
    sandbox: Sandbox, job_file: Path
) -> None:
    await anyio.Path(job_file).write_text(job_text(sandbox, schema=""), encoding="utf-8")
    with pytest.raises(flowport.ConfigError, match="has no field 'notes'"):
        await flowport.run(job_file, sources={"products": products()})
    assert await writes(sandbox) == 0


async def test_a_plan_reads_the_frame_and_writes_nothing(sandbox: Sandbox, job_file: Path) -> None:
    summary = await flowport.plan(job_file, sources={"products": products()})
    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["products"] == {"would_create": 3}
    assert "would create collection Products" in summary.notes
    assert await writes(sandbox) == 0
    assert not (job_file.parent / "shop").exists()


async def test_a_dataframe_collection_without_its_frame_stops_before_anything(
    sandbox: Sandbox, job_file: Path
) -> None:
    with pytest.raises(flowport.ConfigError) as raised:
        await flowport.run(job_file)
    message = str(raised.value)
    assert "collection 'products' reads a dataframe source" in message
    assert "sources={'products': df}" in message
    assert raised.value.key == "collections.products.source"
    with pytest.raises(flowport.ConfigError, match="collection 'products'"):
        await flowport.plan(job_file, sources={})
    # Not a request to the sandbox, not a state folder.
    assert (await sandbox_stats(sandbox))["totals"]["requests"] == 0
    assert not (job_file.parent / "shop").exists()


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"prodcuts": "frame"}, r"(?s)'prodcuts', which is not a collection.*mean 'products'"),
        ({"products": "frame", "authors": "frame"}, r"'authors', whose source is 'csv'"),
        ({"products": [{"sku": "K-1"}]}, r"for collection 'products' is a list, not a pandas"),
    ],
)
async def test_frames_given_wrongly_are_refused_naming_the_collection(
    sandbox: Sandbox, job_file: Path, sources: dict[str, Any], expected: str
) -> None:
    given = {name: products() if value == "frame" else value for name, value in sources.items()}
    with pytest.raises(flowport.ConfigError, match=expected):
        await flowport.run(job_file, sources=given)
    assert (await sandbox_stats(sandbox))["totals"]["requests"] == 0


async def test_a_key_column_the_frame_lacks_is_a_job_error(
    sandbox: Sandbox, job_file: Path
) -> None:
    frame = products().rename(columns={"sku": "SKU"})
    with pytest.raises(flowport.ConfigError, match=r"key column 'sku' is not in the frame"):
        await flowport.run(job_file, sources={"products": frame})
    assert (await sandbox_stats(sandbox))["totals"]["requests"] == 0


async def test_repeated_keys_in_a_frame_are_refused_by_the_runner_as_for_any_source(
    sandbox: Sandbox, job_file: Path
) -> None:
    frame = pd.concat([products(), products().iloc[[0]]], ignore_index=True)
    summary = await flowport.run(job_file, sources={"products": frame})
    assert summary.collections["products"]["created"] == 3
    assert summary.collections["products"]["failed"] == 1
    assert summary.exit_code == 1


def test_the_command_line_says_a_dataframe_source_is_for_library_use(
    job_file: Path, sandbox: Sandbox
) -> None:
    for command in (["run"], ["plan"], ["validate"]):
        result = run_cli(*command, str(job_file), cwd=job_file.parent)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "products: a dataframe source is for library use" in result.stderr
        assert "sources={'products': df}" in result.stderr
    assert not (job_file.parent / "shop").exists()
    offline = run_cli("validate", "--offline", str(job_file), cwd=job_file.parent)
    assert offline.returncode == 0, offline.stderr


async def test_validate_checks_the_schema_the_frames_would_create(
    sandbox: Sandbox, job_file: Path
) -> None:
    assert await flowport.validate(job_file, sources={"products": products()}) == []
    with pytest.raises(flowport.ConfigError, match="collection 'products'"):
        await flowport.validate(job_file)
    assert await writes(sandbox) == 0


async def test_a_dataframe_collection_is_created_with_no_schema_table_at_all(
    sandbox: Sandbox, job_file: Path
) -> None:
    text = job_text(sandbox, schema="").replace(
        'notes = { source = "notes", transforms = ["trim"] }\n', ""
    )
    await anyio.Path(job_file).write_text(text, encoding="utf-8")
    summary = await flowport.run(job_file, sources={"products": products()})
    assert summary.collections["products"] == {"created": 3}
    types = {f["slug"]: f["type"] for f in collection_state(sandbox, "Products")["fields"]}
    assert types["price"] == "Number"
    assert types["released"] == "DateTime"
