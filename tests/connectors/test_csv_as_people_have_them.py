"""CSV files as people really have them: mixed encodings, no header row, trailing empty fields,
a first row that is data, classic Mac line breaks. Nothing is garbled or lost without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowport.base.errors import SourceError
from flowport.connectors import SourceItem, SourceRecord
from flowport.connectors.csv_source import CsvSource, CsvSourceConfig
from flowport.pipeline.jobfile import JobFileError, load_job


async def read_all(src: CsvSource) -> list[SourceItem]:
    return [item async for item in src.records()]


def source(path: Path, **options: object) -> CsvSource:
    config = CsvSourceConfig.model_validate({"path": path, "key": "id", **options})
    return config.open(base_dir=path.parent, env={})


async def records(src: CsvSource) -> list[SourceRecord]:
    items = await read_all(src)
    assert all(isinstance(item, SourceRecord) for item in items), items
    return [item for item in items if isinstance(item, SourceRecord)]


async def test_one_stray_byte_does_not_garble_the_valid_utf8_rows(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        "id,city\n1,México\n2,Zürich\n".encode()
        + b"3,Caf\xe9 cr\xe8me\n"  # one row written by a cp1252 tool
        + "4,São Paulo\n".encode()
    )
    rows = await records(source(path))
    assert [r.fields["city"] for r in rows] == ["México", "Zürich", "Café crème", "São Paulo"]
    # Only the row that fell back says so, naming its field and the codec used.
    assert [r.warnings for r in rows[:2]] == [(), ()]
    assert rows[3].warnings == ()
    [warning] = rows[2].warnings
    assert (warning.kind, warning.field) == ("encoding_fallback", "city")
    assert "line 4" in warning.message
    assert "cp1252" in warning.message


async def test_a_cp1252_line_inside_a_multiline_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "multiline.csv"
    path.write_bytes(b'id,body\n1,"first line\nd\xe9j\xe0 vu"\n2,plain\n')
    rows = await records(source(path))
    assert rows[0].fields["body"] == "first line\ndéjà vu"
    assert [w.field for w in rows[0].warnings] == ["body"]
    assert rows[1].warnings == ()


async def test_a_file_without_a_header_row(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("1,Ada,ada@example.com\n2,Grace,grace@example.com\n", encoding="utf-8")
    src = source(path, header=False, columns=["id", "name", "email"])
    rows = await records(src)
    assert [(r.key, dict(r.fields)) for r in rows] == [
        ("1", {"id": "1", "name": "Ada", "email": "ada@example.com"}),
        ("2", {"id": "2", "name": "Grace", "email": "grace@example.com"}),
    ]
    assert [r.position for r in rows] == ["line 1", "line 2"]
    assert await src.estimated_total() == 2


def test_a_headerless_file_needs_its_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"header = false needs columns"):
        CsvSourceConfig.model_validate({"path": tmp_path / "x.csv", "key": "id", "header": False})
    with pytest.raises(ValueError, match=r"key column 'id' is not one of `columns`"):
        CsvSourceConfig.model_validate(
            {"path": tmp_path / "x.csv", "key": "id", "header": False, "columns": ["a"]}
        )


def test_the_job_file_names_the_key_of_a_headerless_source_without_columns(
    tmp_path: Path,
) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        '[destination]\napi = "sandbox"\n\n[collections.posts]\ntarget = "Posts"\n'
        'source = { type = "csv", path = "posts.csv", key = "id", header = false }\n'
        '[collections.posts.fields]\nname = "id"\n',
        encoding="utf-8",
    )
    with pytest.raises(JobFileError) as raised:
        load_job(job)
    assert "collections.posts.source" in str(raised.value)
    assert "header = false needs columns" in str(raised.value)


async def test_trailing_empty_fields_past_the_header_are_not_errors(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("id,name\n1,Ada,,\n2,Grace,\n3,Linus,extra\n", encoding="utf-8")
    items = await read_all(source(path))
    assert [getattr(i, "fields", None) for i in items[:2]] == [
        {"id": "1", "name": "Ada"},
        {"id": "2", "name": "Grace"},
    ]
    # A value past the header is data with no column: an error, never dropped.
    assert not isinstance(items[2], SourceRecord)
    assert "expected 2 fields, found 3" in items[2].reason


async def test_a_first_row_of_data_is_called_a_missing_header(tmp_path: Path) -> None:
    post = "Lorem ipsum dolor sit amet. " * 100
    path = tmp_path / "export.csv"
    path.write_text(f'17,"{post}",2024-01-01\n18,"{post}",2024-01-02\n', encoding="utf-8")
    with pytest.raises(SourceError) as raised:
        await read_all(source(path))
    message = str(raised.value)
    assert "seems to have no header row" in message
    assert "header = false" in message
    assert len(message) < 400, "the post is quoted, not the whole of it"


async def test_classic_mac_line_breaks_count_records_for_progress(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b'id,text\r1,one\r2,"two\rlines"\r3,three\r')
    src = source(path)
    rows = await records(src)
    assert [r.key for r in rows] == ["1", "2", "3"]
    assert await src.estimated_total() == 3
