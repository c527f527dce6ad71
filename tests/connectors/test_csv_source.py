"""CSV connector: real messy files from ../shared plus generated files for each trap."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from contextlib import aclosing
from pathlib import Path

import pytest
from pydantic import ValidationError

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, SourceItem, SourceRecord, csv_source
from flowport.connectors.csv_source import CsvSource, CsvSourceConfig
from tests.conftest import REPO, require_shared

from .conftest import GHOST_CSV, TWEETS


def source(path: Path, **options: object) -> CsvSource:
    options.setdefault("key", "id")
    config = CsvSourceConfig.model_validate({"path": str(path), **options})
    return config.open(base_dir=path.parent, env={})


async def read(src: CsvSource) -> list[SourceItem]:
    async with aclosing(src.records()) as items:
        return [item async for item in items]


async def read_records(src: CsvSource) -> list[SourceRecord]:
    """What ``read`` returns, each item held to be a record (a RecordError fails the test)."""
    found: list[SourceRecord] = []
    for item in await read(src):
        assert isinstance(item, SourceRecord), item
        found.append(item)
    return found


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- real data ------------------------------------------------------------------------------


@pytest.mark.shared
async def test_tweets_every_record_starts_on_the_line_that_holds_its_id() -> None:
    path = require_shared(TWEETS) / "mayweather-mcgregor__tweets.csv"
    raw = path.read_bytes()
    with path.open(encoding="utf-8", newline="") as handle:
        expected = list(csv.DictReader(handle))
    items = await read(source(path))
    records = [item for item in items if isinstance(item, SourceRecord)]
    assert len(records) == len(expected) == 12_118
    assert [r.fields for r in records] == expected
    multi_line = [r for r in records if "\n" in r.fields["text"] or "\r" in r.fields["text"]]
    assert len(multi_line) > 1000
    assert any("\r" in r.fields["text"] for r in records), "lone CRs inside fields survive"
    search_from, line = 0, 1
    for record in records:
        # The id's first occurrence after the previous record is on the record's first line.
        offset = raw.index(f",{record.key},".encode(), search_from)
        line += raw.count(b"\n", search_from, offset)
        assert record.position == f"line {line}"
        search_from = offset
    assert max(len(r.key) for r in records) == 18, "ids over 32 bits stay exact text"


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def per_line_reference(raw: bytes) -> str:
    """The text a per-line decision gives, written independently of the source: each line (at
    LF, CRLF or a lone CR) as UTF-8 if it is valid UTF-8, else as cp1252."""
    lines = re.split(rb"(?<=\n)|(?<=\r)(?!\n)", raw)
    decoded = []
    for line in lines:
        try:
            decoded.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(line.decode("cp1252", errors="replace"))
    return "".join(decoded)


@pytest.mark.shared
@pytest.mark.parametrize("name", ["BarackObama", "realDonaldTrump"])
async def test_non_utf8_files_fall_back_per_line_and_say_so(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = require_shared(TWEETS) / f"twitter-ratio__{name}.csv"
    raw = path.read_bytes()
    expected = list(csv.DictReader(io.StringIO(per_line_reference(raw), newline="")))
    # Rows holding one of the five bytes cp1252 leaves undefined are the damaged ones.
    undefined = {"\x81", "\x8d", "\x8f", "\x90", "\x9d"}
    with path.open(encoding="latin-1", newline="") as handle:
        damaged = sum(1 for row in csv.reader(handle) if undefined & set("".join(row)))
    src = source(path, key="url")
    with caplog.at_level(logging.WARNING, logger="flowport.connectors.csv_source"):
        items = await read(src)
    records = [item for item in items if isinstance(item, SourceRecord)]
    assert [record.fields for record in records] == expected
    assert src.encoding_used == "utf-8, else cp1252 per line"
    assert damaged > 0
    assert src.damaged_rows == damaged
    assert f"{damaged} row(s)" in caplog.text
    # Every record read through a cp1252 line says so, naming each non-ASCII value.
    fallback_lines = {n + 1 for n, line in enumerate(re.split(rb"(?<=\n)", raw)) if not _utf8(line)}
    warned = [record for record in records if record.warnings]
    assert warned, "some rows of these files are not UTF-8"
    for record in warned:
        assert {w.kind for w in record.warnings} == {"encoding_fallback"}
        assert int((record.position or "").split()[1]) in fallback_lines
        named = {w.field for w in record.warnings}
        assert named == {k for k, v in record.fields.items() if not v.isascii()} or named == {None}
    for record in records:
        if not record.warnings:
            assert all(_utf8(v.encode()) for v in record.fields.values())
    assert raw.count(b"\n") == len(expected), "multi-line tweets there use lone CRs"
    assert items[-1].position == f"line {len(expected) + 1}"


@pytest.mark.shared
async def test_ghost_exports_header_only_and_malformed() -> None:
    folder = require_shared(GHOST_CSV)
    assert await read(source(folder / "mg-wix-csv" / "empty.csv", key="ID")) == []
    malformed = await read(source(folder / "mg-fs-utils" / "malformed.csv", key="name"))
    assert malformed == [
        RecordError(key="line 2", reason="expected 2 fields, found 3", position="line 2")
    ]
    example = await read(source(folder / "mg-fs-utils" / "example.csv", key="Username"))
    assert [item.key for item in example] == [
        "booker12", "grey07", "johnson81", "jenkins46", "smith79",
    ]  # fmt: skip
    assert example[3].position == "line 6", "the blank line is skipped but still counted"


@pytest.mark.shared
async def test_json_inside_a_cell_stays_text_and_space_after_quote_is_kept() -> None:
    path = require_shared(GHOST_CSV) / "mg-wix-csv" / "posts.csv"
    items = await read(source(path, key="ID"))
    assert [item.key for item in items] == ["post-1", "post-2"]
    first, second = items
    assert isinstance(first, SourceRecord)
    assert isinstance(second, SourceRecord)
    assert first.fields["Rich Content"].startswith('{"nodes":[{"type":"PARAGRAPH"')
    assert second.fields["Categories"] == " "
    assert second.fields["Rich Content"] == "not-json"


# --- generated traps ------------------------------------------------------------------------


async def test_utf8_bom_is_stripped_and_leading_zeros_stay(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", "\ufeffid,zip,price\r\n00123,01234,1.50\r\n7,,3\r\n")
    src = source(path)
    items = await read_records(src)
    assert src.encoding_used == "utf-8-sig"
    assert [item.fields for item in items] == [
        {"id": "00123", "zip": "01234", "price": "1.50"},
        {"id": "7", "zip": "", "price": "3"},
    ]
    assert [item.key for item in items] == ["00123", "7"]


async def test_explicit_utf8_also_strips_a_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", "\ufeffid,name\nx,Zoë\n")
    items = await read_records(source(path, encoding="utf-8"))
    assert [item.fields for item in items] == [{"id": "x", "name": "Zoë"}]


@pytest.mark.parametrize("compression", ["auto", "gzip"])
async def test_gzip_by_suffix_or_setting(tmp_path: Path, compression: str) -> None:
    body = 'id;title\n1;Ünïcode\n2;"two\nlines"\n'
    path = tmp_path / ("data.csv.gz" if compression == "auto" else "data.bin")
    path.write_bytes(gzip.compress(body.encode("utf-8")))
    items = await read_records(source(path, compression=compression))
    assert [(i.key, dict(i.fields), i.position) for i in items] == [
        ("1", {"id": "1", "title": "Ünïcode"}, "line 2"),
        ("2", {"id": "2", "title": "two\nlines"}, "line 3"),
    ]


async def test_gzip_detected_by_magic_bytes_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "export"
    path.write_bytes(gzip.compress(b"id,v\n1,a\n"))
    assert [i.key for i in await read(source(path))] == ["1"]


@pytest.mark.parametrize(
    ("delimiter", "text"),
    [
        (";", "id;name;note\n1;Anna;a,b,c\n2;Bo;d,e\n"),
        ("\t", "id\tname\tnote\n1\tAnna\ta;b\n2\tBo\tc\n"),
        ("|", "id|name|note\n1|Anna|x\n2|Bo|y\n"),
    ],
)
async def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str, text: str) -> None:
    items = await read_records(source(write(tmp_path / "d.csv", text)))
    assert items[0].fields["name"] == "Anna"
    assert {len(i.fields) for i in items} == {3}


async def test_given_delimiter_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id;name\n1;a,b\n")
    items = await read_records(source(path, delimiter=";"))
    assert [dict(i.fields) for i in items] == [{"id": "1", "name": "a,b"}]


async def test_malformed_row_in_the_middle_is_an_error_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    lines = ["id,name,bio"]
    for number in range(1, 41):
        if number == 20:
            lines.append("20,too,many,fields")
        elif number == 10:
            lines.append('10,"Multi\nline",x')  # two physical lines
        else:
            lines.append(f"{number},name{number},bio")
    path = write(tmp_path / "m.csv", "\n".join(lines) + "\n")
    items = await read(source(path))
    errors = [item for item in items if isinstance(item, RecordError)]
    records = [item for item in items if isinstance(item, SourceRecord)]
    # id 20 is the 20th data row; the multi-line row 10 pushes it down one physical line.
    assert errors == [
        RecordError(key="line 22", reason="expected 3 fields, found 4", position="line 22")
    ]
    assert len(records) == 39
    assert records[-1].key == "40"
    assert records[-1].position == "line 42"


async def test_unterminated_quote_at_the_end_is_an_error_not_a_silent_swallow(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "q.csv", 'id,text\n1,fine\n2,"never closed\n3,lost\n')
    items = await read(source(path))
    assert [type(item) for item in items] == [SourceRecord, RecordError]
    error = items[1]
    assert error.position == "line 3"
    assert isinstance(error, RecordError)
    assert "quote" in error.reason


async def test_lone_cr_inside_a_quoted_field_and_classic_mac_line_breaks(tmp_path: Path) -> None:
    lf_file = write(tmp_path / "lf.csv", 'id,text\n1,"a\rb"\n2,c\n')
    items = await read(source(lf_file))
    assert [
        (i.key, i.fields["text"], i.position) for i in items if isinstance(i, SourceRecord)
    ] == [
        ("1", "a\rb", "line 2"),
        ("2", "c", "line 3"),
    ]
    mac_file = write(tmp_path / "mac.csv", 'id,text\r1,"x\ry"\r2,z\r')
    items = await read(source(mac_file))
    assert [(i.key, i.position) for i in items] == [("1", "line 2"), ("2", "line 4")]


async def test_an_empty_key_is_a_per_row_error_and_a_repeat_is_passed_on(tmp_path: Path) -> None:
    # Refusing a repeated key is the runner's (in flat memory, for every source): the CSV
    # source passes the repeat on with its line, so the error can name it.
    path = write(tmp_path / "k.csv", "id,v\n1,a\n,b\n1,c\n2,d\n")
    items = await read(source(path))
    assert [(type(i).__name__, i.key, i.position) for i in items] == [
        ("SourceRecord", "1", "line 2"),
        ("RecordError", "line 3", "line 3"),
        ("SourceRecord", "1", "line 4"),
        ("SourceRecord", "2", "line 5"),
    ]
    assert "empty" in items[1].reason  # type: ignore[union-attr]


async def test_several_column_key_and_column_selection(tmp_path: Path) -> None:
    path = write(tmp_path / "il.csv", "InvoiceId,InvoiceLineId,Qty,Note\n1,1,2,x\n1,2,1,y\n")
    src = source(path, key=["InvoiceId", "InvoiceLineId"], key_separator="/", columns=["Qty"])
    items = await read_records(src)
    assert [(i.key, dict(i.fields)) for i in items] == [
        ("1/1", {"Qty": "2"}),
        ("1/2", {"Qty": "1"}),
    ]


async def test_missing_key_column_names_it_and_lists_headers(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", "Email Address,Name\na@b.c,A\n")
    with pytest.raises(SourceError) as raised:
        await read(source(path, key="email address"))
    message = str(raised.value)
    assert "'email address'" in message
    assert "did you mean 'Email Address'" in message
    assert "Headers found: 'Email Address', 'Name'" in message
    with pytest.raises(SourceError, match="'Phone' is not in the header"):
        await read(source(path, key="Email Address", columns=["Name", "Phone"]))


async def test_duplicate_headers_are_told_apart(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "id,tag,tag,tag\n1,a,b,c\n")
    items = await read(source(path))
    assert dict(items[0].fields) == {"id": "1", "tag": "a", "tag.1": "b", "tag.2": "c"}  # type: ignore[union-attr]


async def test_explicit_strict_codec_on_a_wrong_file_is_a_clear_source_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "latin.csv", "id,name\n1,Zoë\n", encoding="cp1252")
    with pytest.raises(SourceError, match=r"not valid utf-8-sig.*'cp1252'"):
        await read(source(path, encoding="utf-8"))
    src = source(path, encoding="utf-8:replace")
    items = await read(src)
    assert items[0].fields["name"] == "Zo\ufffd"  # type: ignore[union-attr]
    assert src.damaged_rows == 1
    src = source(path, encoding="cp1252")
    assert (await read(src))[0].fields["name"] == "Zoë"  # type: ignore[union-attr]
    assert src.damaged_rows == 0


async def test_non_utf8_byte_far_into_the_file_still_switches_before_any_record(
    tmp_path: Path,
) -> None:
    body = "id,text\n" + "".join(f"{n},plain ascii row\n" for n in range(50_000))
    path = write(tmp_path / "late.csv", body + "50000,caf\xe9\n", encoding="cp1252")
    src = source(path)
    items = await read(src)
    assert src.encoding_used == "utf-8, else cp1252 per line"
    assert items[-1].fields["text"] == "café"  # type: ignore[union-attr]
    assert [w.field for w in items[-1].warnings] == ["text"]  # type: ignore[union-attr]
    assert not any(item.warnings for item in items[:-1])  # type: ignore[union-attr]
    assert src.damaged_rows == 0


async def test_unreadable_inputs_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        await read(source(tmp_path / "missing.csv"))
    with pytest.raises(SourceError, match="is a folder"):
        await read(source(tmp_path))
    with pytest.raises(SourceError, match="is empty"):
        await read(source(write(tmp_path / "empty.csv", "")))
    bad_gzip = tmp_path / "bad.csv.gz"
    whole = gzip.compress(b"id\n" + "".join(f"{n}\n" for n in range(100_000)).encode())
    bad_gzip.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError):
        await read(source(bad_gzip))


async def test_since_is_refused_clearly(tmp_path: Path) -> None:
    src = source(write(tmp_path / "s.csv", "id\n1\n"))
    assert src.incremental is False
    with pytest.raises(ConfigError, match="cannot read incrementally"):
        async with aclosing(src.records(since="2024-01-01")) as items:
            await anext(items)


def test_config_is_frozen_strict_and_resolves_relative_paths(tmp_path: Path) -> None:
    config = CsvSourceConfig(path=Path("data/a.csv"), key="id")
    assert config.open(base_dir=tmp_path, env={}).name == "csv:a.csv"
    assert "data/a.csv" in repr(config.open(base_dir=tmp_path, env={}))
    with pytest.raises(ValidationError):
        CsvSourceConfig.model_validate({"path": "a.csv", "key": "id", "delimeter": ";"})
    with pytest.raises(ValidationError, match="unknown encoding"):
        CsvSourceConfig(path=Path("a.csv"), key="id", encoding="no-such-codec")
    with pytest.raises(ValidationError, match="one character"):
        CsvSourceConfig(path=Path("a.csv"), key="id", delimiter=";;")
    with pytest.raises(ValidationError, match="at least one column"):
        CsvSourceConfig(path=Path("a.csv"), key=())
    with pytest.raises(ValidationError):
        config.key = "other"  # type: ignore[misc]


async def test_a_parse_problem_deep_in_a_plain_file_reads_the_same_as_a_careful_read(
    tmp_path: Path,
) -> None:
    # Plain LF files are read by the csv module directly; a row it refuses (here text after a
    # closing quote, then an unterminated quote at the end) sends the read back to the careful
    # way, past the rows already handed out. Nothing may be lost, doubled or misnumbered.
    lines = ["id,text,more"]
    for number in range(1, 1301):
        if number == 700:
            lines.append('700,"quoted" trailing,x')
        elif number == 650:
            lines.append('650,"two\nlines",x')
        elif number == 1000:
            lines.append("")
            lines.append("1000,blank line above,x")
        elif number == 1300:
            lines.append('1300,"never closed,x')
        else:
            lines.append(f"{number},text {number},x")
    plain = write(tmp_path / "plain.csv", "\n".join(lines) + "\n")
    # The same rows with a lone CR inside row 1's field: read the careful way from the start.
    careful_text = "\n".join(lines).replace("1,text 1,x", '1,"text\r1",x', 1) + "\n"
    careful = write(tmp_path / "careful.csv", careful_text)

    items = await read(source(plain))
    reference = await read(source(careful))
    assert [(type(i), i.key, i.position) for i in items][1:] == [
        (type(i), i.key, i.position) for i in reference
    ][1:]
    records = {i.key: i for i in items if isinstance(i, SourceRecord)}
    assert len(records) == 1299
    assert records["700"].fields["text"] == "quoted trailing"
    assert records["650"].position == "line 651"
    assert records["651"].position == "line 653"
    assert records["1000"].position == "line 1003"
    assert records["1299"].position == "line 1302"
    (error,) = [i for i in items if isinstance(i, RecordError)]
    assert error.position == "line 1303"


@pytest.mark.parametrize("block", [1 << 20, 1, 2, 3, 5, 7])
async def test_the_count_is_of_rows_not_of_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # Fields holding line breaks, doubled quotes, CRLF, and a last row without a line break;
    # read in blocks of every size, so quotes and line breaks straddle the blocks' edges.
    text = (
        'id,text\r\n1,"a\r\nb\nc"\r\n2,"say ""hi""\nthere"\n3,plain\n'
        '4,"""quoted"" start\n"\n5,"x,y"\n6,last'
    )
    path = write(tmp_path / "q.csv", text)
    monkeypatch.setattr(csv_source, "_SCAN_BLOCK", block)
    items = await read(source(path))
    assert [i.key for i in items if isinstance(i, SourceRecord)] == ["1", "2", "3", "4", "5", "6"]
    assert await source(path).estimated_total() == 6


async def test_the_demo_files_count_their_records(tmp_path: Path) -> None:
    for name in ("authors.csv", "posts.csv"):
        path = REPO / "runs" / "demo-data" / name
        records = [i for i in await read(source(path)) if isinstance(i, SourceRecord)]
        assert await source(path).estimated_total() == len(records)


async def test_the_count_and_the_read_share_one_scan_until_the_file_changes(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "s.csv", "id,text\n1,a\n2,b\n")
    src = source(path)
    assert await src.estimated_total() == 2
    # Rewritten (longer, with a lone CR in a field): scanned again, so the read counts lines
    # the careful way and the count follows the file.
    write(path, 'id,text\n1,"x\ry"\n2,b\n3,c\n')
    assert await src.estimated_total() == 3
    items = await read(src)
    assert [(i.key, i.position) for i in items] == [
        ("1", "line 2"),
        ("2", "line 3"),
        ("3", "line 4"),
    ]
