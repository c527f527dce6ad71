"""DataFrame connector: missing values, numpy scalars, timestamps, keys, dtypes and memory."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import subprocess
import sys
import tracemalloc
from contextlib import aclosing, closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, SourceItem, SourceRecord
from flowport.connectors.dataframe import DataFrameSource, DataFrameSourceConfig, field_type_of
from flowport.connectors.sql import SqlSourceConfig, iso_duration

REPO = Path(__file__).resolve().parents[2]


async def read(source: DataFrameSource) -> list[SourceItem]:
    async with aclosing(source.records()) as items:
        return [item async for item in items]


async def records_of(frame: pd.DataFrame, **options: Any) -> list[SourceRecord]:
    items = await read(DataFrameSource(frame, **options))
    assert all(isinstance(item, SourceRecord) for item in items), items
    return [item for item in items if isinstance(item, SourceRecord)]


# -- values ----------------------------------------------------------------------------------


async def test_every_kind_of_missing_value_is_none_with_its_key_kept() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "floats": [np.nan, 1.5, None, 2.0],
            "objects": [None, np.nan, pd.NA, pd.NaT],
            "stamps": pd.Series([None, "2024-01-01", None, "2024-01-02"], dtype="datetime64[us]"),
            "nullable": pd.array([pd.NA, 1, 2, pd.NA], dtype="Int64"),
            "text": pd.array([pd.NA, "x", "y", None], dtype="string"),
            "flags": pd.array([None, True, False, None], dtype="boolean"),
        }
    )
    records = await records_of(frame, key_columns=("id",))
    first = records[0].fields
    assert first == {
        "id": "a",
        "floats": None,
        "objects": None,
        "stamps": None,
        "nullable": None,
        "text": None,
        "flags": None,
    }
    assert [r.fields["objects"] for r in records] == [None, None, None, None]
    assert [r.fields["nullable"] for r in records] == [None, 1, 2, None]
    assert [r.fields["flags"] for r in records] == [None, True, False, None]


async def test_missing_values_look_as_the_sql_source_gives_a_null(tmp_path: Path) -> None:
    # The same table read by both sources: a NULL and a NaN must reach the mapper alike.
    database = tmp_path / "rows.sqlite"
    with closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, title TEXT, price REAL, stock INTEGER)")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [("a", "Kettle", 39.5, 3), ("b", None, None, None), ("c", "Mug", 2.25, 0)],
        )
        db.commit()
        frame = pd.read_sql_query("SELECT * FROM t ORDER BY id", db)
    sql = SqlSourceConfig(url_env="URL", table="t", key="id").open(
        base_dir=tmp_path, env={"URL": f"sqlite:///{database}"}
    )
    async with aclosing(sql.records()) as items:
        from_sql = [dict(item.fields) async for item in items if isinstance(item, SourceRecord)]
    from_frame = [dict(r.fields) for r in await records_of(frame, key_columns=("id",))]
    # pandas turns the INTEGER column holding a NULL into float64: 3 -> 3.0, equal as numbers.
    assert from_frame == from_sql
    assert from_frame[1] == {"id": "b", "title": None, "price": None, "stock": None}


async def test_numpy_scalars_become_plain_python_values() -> None:
    frame = pd.DataFrame(
        {
            "id": np.array([1, 2], dtype=np.int32),
            "count": np.array([7, 8], dtype=np.uint16),
            "ratio": np.array([0.5, 0.25], dtype=np.float32),
            "flag": np.array([True, False]),
            "boxed": [np.int64(3), np.str_("text")],
            "nested": [[np.float64(1.5), np.nan], {"n": np.bool_(True), 2: np.int8(4)}],
            "array": [np.array([1, 2]), np.array(["x"])],
        }
    )
    records = await records_of(frame, key_columns=("id",))
    first, second = (r.fields for r in records)
    assert records[0].key == "1"
    for fields in (first, second):
        assert type(fields["id"]) is int
        assert type(fields["count"]) is int
        assert type(fields["ratio"]) is float
        assert type(fields["flag"]) is bool
    assert (first["boxed"], type(first["boxed"])) == (3, int)
    assert (second["boxed"], type(second["boxed"])) == ("text", str)
    assert first["nested"] == [1.5, None]
    assert second["nested"] == {"n": True, "2": 4}
    assert type(second["nested"]["n"]) is bool
    assert first["array"] == [1, 2]
    assert type(first["array"][0]) is int
    assert second["array"] == ["x"]


async def test_timestamps_are_iso_8601_with_an_offset_only_when_tz_aware() -> None:
    naive = pd.to_datetime(["2024-03-01 10:30:00", "2024-06-15 00:00:00.250"], format="ISO8601")
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "naive": naive,
            "paris": naive.tz_localize("Europe/Paris"),
            "utc": naive.tz_localize("UTC"),
            "boxed": [pd.Timestamp("2024-01-01T12:00", tz="America/New_York"), dt.date(2024, 2, 3)],
            "span": pd.to_timedelta(["1 days 02:00:00", "-30s"]),
        }
    )
    first, second = (r.fields for r in await records_of(frame, key_columns=("id",)))
    # A naive value is written as the SQL source writes a naive datetime: isoformat, no offset.
    assert first["naive"] == dt.datetime(2024, 3, 1, 10, 30).isoformat() == "2024-03-01T10:30:00"
    assert second["naive"] == "2024-06-15T00:00:00.250000"
    assert first["paris"] == "2024-03-01T10:30:00+01:00"
    assert second["paris"] == "2024-06-15T00:00:00.250000+02:00"
    assert first["utc"] == "2024-03-01T10:30:00+00:00"
    assert first["boxed"] == "2024-01-01T12:00:00-05:00"
    assert second["boxed"] == "2024-02-03"
    # Intervals as the SQL source writes them.
    assert first["span"] == iso_duration(dt.timedelta(days=1, hours=2)) == "P1DT7200S"
    assert second["span"] == "-P0DT30S"


async def test_other_values_are_json_like_and_an_unknown_type_fails_its_row() -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "value": [decimal.Decimal("0.10"), float("inf"), object()],
            "raw": [b"\x00\xff", {"k": [1, None]}, "plain"],
        }
    )
    items = await read(DataFrameSource(frame, key_columns=("id",)))
    assert isinstance(items[0], SourceRecord)
    assert items[0].fields == {"id": "a", "value": "0.10", "raw": "AP8="}
    assert isinstance(items[1], SourceRecord)
    assert items[1].fields == {"id": "b", "value": "inf", "raw": {"k": [1, None]}}
    assert items[2] == RecordError(
        key="c", reason="column 'value' holds a value of type builtins.object", position="row 3"
    )


# -- keys --------------------------------------------------------------------------------------


async def test_key_columns_and_positions_across_batches() -> None:
    frame = pd.DataFrame({"shop": ["x", "x", "y", "y", "z"], "sku": [1, 2, 1, 2, 1]})
    records = await records_of(frame, key_columns=("shop", "sku"), key_separator="/", batch_size=2)
    assert [r.key for r in records] == ["x/1", "x/2", "y/1", "y/2", "z/1"]
    assert [r.position for r in records] == [f"row {n}" for n in range(1, 6)]


async def test_a_row_without_a_key_is_an_error_and_repeats_are_passed_on() -> None:
    frame = pd.DataFrame(
        {"sku": [1.0, np.nan, 3.0, 3.0, 5.5], "code": ["a", "b", "", "d", "e"]},
    )
    items = await read(DataFrameSource(frame, key_columns=("sku",)))
    # A float key that is a whole number is written as one: the column is float only because
    # it holds a NaN, and the keys must not change when that row is fixed.
    assert [item.key for item in items] == ["1", "row 2", "3", "3", "5.5"]
    assert items[1] == RecordError(
        key="row 2", reason="the key column 'sku' is missing", position="row 2"
    )
    # The runner refuses the repeat (the first row wins), as for CSV and SQL.
    assert [type(item) for item in items].count(SourceRecord) == 4
    by_code = await read(DataFrameSource(frame, key_columns=("code",)))
    assert by_code[2] == RecordError(
        key="row 3", reason="the key column 'code' is empty", position="row 3"
    )


async def test_without_a_key_the_index_is_the_key_and_a_named_level_a_field() -> None:
    plain = pd.DataFrame({"title": ["a", "b"]})
    records = await records_of(plain)
    assert [(r.key, dict(r.fields)) for r in records] == [
        ("0", {"title": "a"}),
        ("1", {"title": "b"}),
    ]

    named = pd.DataFrame({"sku": ["K-1", "K-2"], "title": ["a", "b"]}).set_index("sku")
    records = await records_of(named)
    assert [(r.key, dict(r.fields)) for r in records] == [
        ("K-1", {"sku": "K-1", "title": "a"}),
        ("K-2", {"sku": "K-2", "title": "b"}),
    ]

    multi = pd.DataFrame({"shop": ["x", "y"], "n": [1, 2], "title": ["a", "b"]})
    multi = multi.set_index(["shop", "n"])
    records = await records_of(multi, key_separator="|")
    assert [(r.key, dict(r.fields)) for r in records] == [
        ("x|1", {"shop": "x", "n": 1, "title": "a"}),
        ("y|2", {"shop": "y", "n": 2, "title": "b"}),
    ]
    # With a key column, the index is not read at all.
    records = await records_of(named, key_columns=("title",))
    assert [dict(r.fields) for r in records] == [{"title": "a"}, {"title": "b"}]


async def test_a_missing_index_value_is_an_error_naming_the_level() -> None:
    frame = pd.DataFrame({"sku": ["K-1", None], "title": ["a", "b"]}).set_index("sku")
    items = await read(DataFrameSource(frame))
    assert items[1] == RecordError(
        key="row 2", reason="the index level 'sku' is missing", position="row 2"
    )


async def test_an_absent_key_column_or_repeated_names_stop_before_reading() -> None:
    frame = pd.DataFrame({"id": [1], "title": ["a"]})
    source = DataFrameSource(frame, key_columns=("sku",))
    with pytest.raises(SourceError, match=r"key column 'sku' is not in the frame.*'id', 'title'"):
        await source.check()
    with pytest.raises(SourceError, match="key column 'sku'"):
        await read(source)
    twice = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(SourceError, match=r"'a' appear more than once"):
        await DataFrameSource(twice).check()
    clash = pd.DataFrame({"title": ["a"]}, index=pd.Index(["k"], name="title"))
    with pytest.raises(SourceError, match=r"'title' appear more than once"):
        await read(DataFrameSource(clash))


async def test_non_text_column_labels_become_text() -> None:
    frame = pd.DataFrame({1: ["a"], ("x", "y"): [2]}, index=pd.Index(["k"]))
    (record,) = await records_of(frame)
    assert dict(record.fields) == {"1": "a", "('x', 'y')": 2}


async def test_an_empty_frame_yields_nothing_and_counts_zero() -> None:
    source = DataFrameSource(
        pd.DataFrame({"id": pd.Series([], dtype="int64")}), key_columns=("id",)
    )
    assert await read(source) == []
    assert await source.estimated_total() == 0


def test_the_config_checks_its_key_and_needs_a_frame() -> None:
    with pytest.raises(ValidationError, match="key must name at least one column"):
        DataFrameSourceConfig(key=("sku", ""))
    with pytest.raises(ConfigError, match=r"sources=\{'<collection>': df\}"):
        DataFrameSourceConfig(key="sku").open(base_dir=Path(), env={})
    frame = pd.DataFrame({"sku": ["a"]})
    config = DataFrameSourceConfig(key="sku")
    bound = config.bind(frame, label="products")
    assert config.frame is None
    assert bound.frame is frame
    assert bound == bound.model_copy()  # compared by identity, never element by element
    assert bound.open(base_dir=Path(), env={}).name == "dataframe:products"


# -- dtypes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([1, 2], dtype="int64"), "Number"),
        (pd.Series([1, 2], dtype="uint8"), "Number"),
        (pd.Series([1, None], dtype="Int64"), "Number"),
        (pd.Series([1.5, None], dtype="float64"), "Number"),
        (pd.Series([1.5, None], dtype="Float32"), "Number"),
        (pd.Series([True, False], dtype="bool"), "Switch"),
        (pd.Series([True, None], dtype="boolean"), "Switch"),
        (pd.Series(pd.to_datetime(["2024-01-01"])), "DateTime"),
        (pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("UTC")), "DateTime"),
        (pd.Series(["a", None], dtype="object"), "PlainText"),
        (pd.Series(["a", None], dtype="string"), "PlainText"),
        (pd.Series(["a", "b"], dtype="category"), "PlainText"),
        (pd.Series([[1], {"a": 1}], dtype="object"), "PlainText"),
        (pd.Series(pd.to_timedelta(["1s"])), "PlainText"),
        (pd.Series([1 + 2j]), "PlainText"),
    ],
)
def test_field_type_of_dtype(values: pd.Series[Any], expected: str) -> None:
    assert field_type_of(values.dtype) == expected


def test_field_types_cover_named_index_levels_and_columns() -> None:
    frame = pd.DataFrame(
        {"price": [1.5], "live": [True], "at": pd.to_datetime(["2024-01-01"]), "t": ["x"]},
        index=pd.Index([7], name="sku"),
    )
    assert DataFrameSource(frame).field_types() == {
        "sku": "Number",
        "price": "Number",
        "live": "Switch",
        "at": "DateTime",
        "t": "PlainText",
    }


# -- streaming -------------------------------------------------------------------------------


async def test_reading_holds_one_slice_not_the_whole_frame() -> None:
    rows = 200_000
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "title": [f"title {n}" for n in range(rows)],
            "price": np.linspace(0, 100, rows),
            "at": pd.date_range("2024-01-01", periods=rows, freq="min"),
        }
    )
    source = DataFrameSource(frame, key_columns=("id",), batch_size=500)
    tracemalloc.start()
    try:
        seen = 0
        async with aclosing(source.record_batches()) as batches:
            async for batch in batches:
                seen += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == rows
    # Every row converted at once (to_dict("records") and the like) holds ~100 MB of dicts;
    # a 500-row slice is well under 2 MB.
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while reading"


def test_the_job_file_models_do_not_import_pandas() -> None:
    # The CLI loads every connector's config model; pandas' import time is for frames only.
    code = (
        "import sys, flowport.pipeline.cli, flowport.connectors.dataframe\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
