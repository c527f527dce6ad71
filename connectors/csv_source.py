"""CSV source: a file (optionally gzip-compressed) read row by row, values kept as text.

The file is parsed with the standard library's ``csv`` module rather than with pandas: pandas'
chunked reader cannot say on which line a record starts (its ``on_bad_lines`` callable gets the
fields, not the line), and every record here carries its starting line as ``position``. Both
stream; ``benchmarks/bench_csv_memory.py`` measures them.

Two ways of reading give the same records: when a byte scan of the (uncompressed) file finds no
CR outside a CRLF, the csv module reads the text layer directly and counts lines itself; otherwise,
or after any parse problem, a line iterator counts physical lines and lets a refused record be
read again leniently. The scan is one extra pass over the file before the first record.

Decisions a job author may want to know:

* Values stay text exactly as written: ``00123`` stays ``"00123"``, and an empty cell is ``""``
  (CSV cannot tell an empty value from a missing one, so none is invented).
* ``position`` is ``"line N"``: the physical line on which the record starts, counting LF line
  breaks as editors and ``grep -n`` do. A lone CR inside a field does not start a line, except in a
  file whose header line itself ends with a lone CR (classic Mac files), where CR is the line break.
* A row with the wrong number of fields, an unterminated quote or a field over
  ``MAX_FIELD_CHARS`` becomes a :class:`RecordError` for that row; reading goes on. So does a row
  whose key is empty or repeats an earlier row's key (the first one wins). Blank lines are skipped.
* ``encoding = "auto"``: a UTF-8 BOM is honoured and stripped (a UTF-16 BOM too); otherwise the file
  is checked to be valid UTF-8 in bounded chunks before the first record is read. If it is not,
  the decision is made line by line, never for the whole file: a line that is valid UTF-8 stays
  UTF-8 (one stray byte elsewhere must not turn "México" into "MÃ©xico"), and only a line that is
  not is read as cp1252, its record carrying an ``encoding_fallback`` warning for each value
  with non-ASCII text. cp1252's five undefined bytes become U+FFFD. Rows holding a U+FFFD
  produced that way (or under ``"<codec>:replace"``) are counted in
  :attr:`CsvSource.damaged_rows` and logged as a warning at the end of the read.
* ``header = false`` reads a file without a header row; ``columns`` then names every column in
  order. A first row that looks like data (a cell of over 100 characters or holding a line
  break) is said to be one when a key column is not found in it.
* Fields past the header's width that are all empty (trailing delimiters, as spreadsheets
  export) are dropped: nothing is lost; a row with more non-empty fields is an error.
* Duplicate header names are told apart the way pandas does it: ``name``, ``name.1``, ...
* Memory stays flat whatever the file's size: a key repeated in the file is passed on as read,
  and the runner, which sees every source's keys, refuses the repeat (the first row wins).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import io
import itertools
import logging
import re
import zlib
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol, cast

import anyio
from pydantic import Field, field_validator, model_validator

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import (
    BatchedRecords,
    RecordError,
    SourceItem,
    SourceRecord,
    SourceWarning,
    refuse_since,
)
from flowport.connectors._keys import KeyedSourceConfig

__all__ = ["MAX_FIELD_CHARS", "CsvSource", "CsvSourceConfig"]

logger = logging.getLogger(__name__)

#: A field longer than this is almost always a quote that was never closed swallowing the file.
MAX_FIELD_CHARS = 16 * 1024 * 1024

_SNIFF_CHARS = 64 * 1024
_SNIFF_DELIMITERS = ",;\t|"
_UTF8_SCAN_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
#: Bytes read at a time by the scan that counts rows before a run.
_SCAN_BLOCK = 1 << 20
_REPLACEMENT_CHAR = "\ufffd"
#: The codec name of a file read line by line: UTF-8 where a line is valid, else cp1252.
_PER_LINE = "utf-8, else cp1252 per line"
#: A header cell this long, or holding a line break, is text of a record, not a column name.
_HEADER_CELL_MAX = 100
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")
#: Codecs in which the byte 0x0D is always a CR, so a byte scan can vouch for line breaks.
_BYTE_TRANSPARENT_CODECS = frozenset({"utf-8", "utf-8-sig", "cp1252", "latin-1", "iso8859-1"})


def _parse_encoding(spec: str) -> tuple[str, str] | None:
    """``"auto"`` -> None; ``"cp1252"`` -> ("cp1252", "strict"); ``"utf-8:replace"`` -> replace."""
    if spec == "auto":
        return None
    codec, _, errors = spec.partition(":")
    if errors not in ("", "strict", "replace"):
        raise ValueError(f"unknown error mode {errors!r}: use '<codec>' or '<codec>:replace'")
    try:
        canonical = codecs.lookup(codec).name
    except LookupError:
        raise ValueError(f"unknown encoding {codec!r}") from None
    if canonical == "utf-8":
        # An explicit utf-8 still strips a BOM: a BOM glued to the first header breaks key lookup.
        canonical = "utf-8-sig"
    return canonical, errors or "strict"


class CsvSourceConfig(KeyedSourceConfig):
    """A CSV file whose rows become items; values stay text."""

    type: Literal["csv"] = "csv"
    path: Path = Field(
        description="The CSV file; relative paths are resolved against the job file's folder."
    )
    header: bool = Field(
        default=True,
        description=(
            "Whether the first row names the columns. With header = false, `columns` names "
            "every column of the file, in order."
        ),
    )
    columns: tuple[str, ...] | None = Field(
        default=None,
        description=(
            "The columns the mapping reads. Each must be in the header (else the read stops with "
            "an error naming it) and only these are passed on. None passes every column. With "
            "header = false: the name of every column, in order."
        ),
    )
    encoding: str = Field(
        default="auto",
        description=(
            "'auto' (UTF-8, with or without BOM, else cp1252), a codec name such as 'cp1252' "
            "or 'latin-1', or '<codec>:replace' to replace undecodable bytes with U+FFFD."
        ),
    )
    delimiter: str | None = Field(
        default=None,
        description="The field delimiter; None sniffs it from the start of the file (, ; tab |).",
    )
    compression: Literal["auto", "gzip", "none"] = Field(
        default="auto",
        description="'auto' reads gzip when the name ends in .gz or the file starts like gzip.",
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Rows parsed at a time; bounds memory held in flight and how long a parse "
        "holds the event loop.",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding_known(cls, value: str) -> str:
        _parse_encoding(value)
        return value

    @model_validator(mode="after")
    def _headerless_needs_columns(self) -> CsvSourceConfig:
        if not self.header:
            if not self.columns:
                raise ValueError(
                    "header = false needs columns = [...] naming every column of the file, in order"
                )
            missing = [name for name in self.key_columns if name not in self.columns]
            if missing:
                raise ValueError(f"key column {missing[0]!r} is not one of `columns`")
        return self

    @field_validator("delimiter")
    @classmethod
    def _delimiter_single_char(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in '"\r\n'):
            raise ValueError("delimiter must be one character other than a quote or line break")
        return value

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (self.key,) if isinstance(self.key, str) else self.key

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> CsvSource:
        path = self.path if self.path.is_absolute() else base_dir / self.path
        return CsvSource(
            path=path,
            key_columns=self.key_columns,
            key_separator=self.key_separator,
            columns=self.columns,
            header=self.header,
            encoding=self.encoding,
            delimiter=self.delimiter,
            compression=self.compression,
            batch_size=self.batch_size,
        )


def _first_line_break(block: bytes) -> bytes:
    """b"\r" when the block's first line ends with a lone CR, b"\n" for LF or CRLF, b"" when the
    block holds no line break (the next block decides)."""
    lf, cr = block.find(b"\n"), block.find(b"\r")
    if cr < 0 and lf < 0:
        return b""
    if cr < 0 or (0 <= lf < cr):
        return b"\n"
    if cr + 1 < len(block):
        return b"\n" if block[cr + 1 : cr + 2] == b"\n" else b"\r"
    return b""  # a CR at the block's end: the next block says whether an LF follows


@dataclass(frozen=True, slots=True)
class _ByteScan:
    stamp: tuple[int, int]
    rows: int
    plain_line_breaks: bool


class CsvSource(BatchedRecords):
    """Reads one CSV file; see the module docstring for what it decides and reports."""

    def __init__(
        self,
        *,
        path: Path,
        key_columns: tuple[str, ...],
        key_separator: str = ":",
        columns: tuple[str, ...] | None = None,
        header: bool = True,
        encoding: str = "auto",
        delimiter: str | None = None,
        compression: Literal["auto", "gzip", "none"] = "auto",
        batch_size: int = 500,
    ) -> None:
        try:
            self._codec = _parse_encoding(encoding)
        except ValueError as exc:
            raise ConfigError(str(exc), key="encoding") from None
        self._path = path
        self._key_columns = key_columns
        self._key_separator = key_separator
        self._columns = columns
        self._header = header
        self._delimiter = delimiter
        self._compression = compression
        self._batch_size = batch_size
        self._damaged_rows = 0
        self._encoding_used: str | None = None
        self._scanned: _ByteScan | None = None

    @property
    def name(self) -> str:
        return f"csv:{self._path.name}"

    @property
    def incremental(self) -> bool:
        return False

    @property
    def damaged_rows(self) -> int:
        """Rows read so far holding a U+FFFD put there by decoding (undecodable bytes)."""
        return self._damaged_rows

    @property
    def encoding_used(self) -> str | None:
        """The codec the last read used, once it started (``"auto"`` resolved)."""
        return self._encoding_used

    def __repr__(self) -> str:
        return f"CsvSource(path={str(self._path)!r}, key={self._key_columns!r})"

    async def estimated_total(self, since: str | None = None) -> int | None:
        """Rows after the header: line breaks outside quoted fields, so a field holding line
        breaks counts once. High by the blank lines; a stray quote in an unquoted field can
        throw it off (it only sizes the progress display)."""
        return await anyio.to_thread.run_sync(self._count_rows)

    def _count_rows(self) -> int | None:
        scan = self._scan()
        if scan is None:
            return None
        return scan.rows if self._header else scan.rows + 1

    def _plain_line_breaks(self) -> bool:
        scan = self._scan()
        return scan is not None and scan.plain_line_breaks

    def _scan(self) -> _ByteScan | None:
        """One pass over the raw file: how many rows follow the header (line breaks outside
        quoted fields), and whether every CR in it belongs to a CRLF (then the csv module's
        own line count is the file's). Kept while the file's size and mtime stay, so the count
        before a run and the read share one pass. None for a gzip file or one that cannot be
        read (records() reports that)."""
        try:
            stat = self._path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if self._scanned is not None and self._scanned.stamp == stamp:
                return self._scanned
            with self._path.open("rb") as raw:
                if self._compression == "gzip" or raw.read(2) == _GZIP_MAGIC:
                    return None
                raw.seek(0)
                lines, last, carry, plain, quoted = 0, b"\n", b"", True, False
                line_break = b""
                while block := raw.read(_SCAN_BLOCK):
                    # The file's line break is the first one's: LF (or CRLF), or a lone CR in
                    # classic Mac files, as the read decides too.
                    line_break = line_break or _first_line_break(block)
                    # Between quote characters, fields alternate outside and inside quotes
                    # (a doubled quote inside a field opens and closes an empty stretch).
                    stretches = block.split(b'"')
                    counted = line_break or b"\n"
                    lines += sum(part.count(counted) for part in stretches[quoted::2])
                    quoted ^= (len(stretches) - 1) % 2 == 1
                    last = block[-1:]
                    if plain:
                        joined = carry + block
                        carry = b"\r" if joined.endswith(b"\r") else b""
                        if carry:
                            joined = joined[:-1]
                        plain = joined.count(b"\r") == joined.count(b"\r\n")
        except OSError:
            return None
        lines += last != (line_break or b"\n") and not quoted
        self._scanned = _ByteScan(stamp, max(lines - 1, 0), plain and not carry)
        return self._scanned

    async def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[list[SourceItem], None]:
        """The rows ``records()`` yields, as the lists parsed at a time."""
        refuse_since(self.name, since, "a CSV file has no change cursor")
        self._damaged_rows = 0
        reader = await anyio.to_thread.run_sync(self._open_reader)
        try:
            self._encoding_used = reader.encoding
            while True:
                # Parsed on the event loop, a bounded batch at a time (~1 ms per 500 rows): in a
                # worker thread the parse only contended with the runner for the GIL, which cost
                # a tenth of a run's CPU in switches (benchmarks/README.md). Opening the file,
                # where the disk may be slow, stays in a thread.
                batch = reader.read_batch(self._batch_size)
                self._damaged_rows = reader.damaged_rows
                if not batch:
                    break
                yield batch
        finally:
            reader.close()
        if reader.damaged_rows:
            logger.warning(
                "%s: %d row(s) held bytes not valid in %s; they were replaced with U+FFFD",
                self.name,
                reader.damaged_rows,
                reader.encoding,
            )

    def _open_reader(self) -> _RowReader:
        if not self._path.is_file():
            what = "is a folder, not a file" if self._path.is_dir() else "does not exist"
            raise SourceError(f"CSV file {self._path} {what}")
        codec, errors = self._codec or self._detect_encoding()
        delimiter = self._delimiter or self._sniff_delimiter(codec, errors)
        return _RowReader(
            open_text=lambda: self._open_text(codec, errors),
            plain_line_breaks=codec in _BYTE_TRANSPARENT_CODECS and self._plain_line_breaks(),
            path=self._path,
            label=self.name,
            codec=codec,
            errors=errors,
            delimiter=delimiter,
            key_columns=self._key_columns,
            key_separator=self._key_separator,
            columns=self._columns,
            header=self._header,
        )

    def _open_binary(self, stack: ExitStack) -> IO[bytes]:
        try:
            raw = stack.enter_context(self._path.open("rb"))
            gzipped = self._compression == "gzip"
            if self._compression == "auto":
                gzipped = self._path.suffix.lower() == ".gz" or raw.peek(2)[:2] == _GZIP_MAGIC
            if gzipped:
                unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
                stack.callback(unzipped.close)
                return cast("IO[bytes]", unzipped)
        except OSError as exc:
            raise SourceError(f"cannot open CSV file {self._path}: {exc.strerror or exc}") from None
        return raw

    def _open_text(self, codec: str, errors: str) -> tuple[ExitStack, _Text]:
        stack = ExitStack()
        try:
            binary = self._open_binary(stack)
            if codec == _PER_LINE:
                return stack, _PerLineText(binary)
            text = io.TextIOWrapper(binary, encoding=codec, errors=errors, newline="")
            stack.callback(text.detach)
        except BaseException:
            stack.close()
            raise
        return stack, text

    def _detect_encoding(self) -> tuple[str, str]:
        with ExitStack() as stack:
            stream = self._open_binary(stack)
            try:
                data = stream.read(4)
                if data.startswith(codecs.BOM_UTF8):
                    return "utf-8-sig", "strict"
                if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    return "utf-16", "strict"
                decoder = codecs.getincrementaldecoder("utf-8")()
                while True:
                    # ASCII is valid UTF-8: most chunks of most files need no decoding (a
                    # tenth of a nightly rerun's time went here), unless the last chunk ended
                    # inside a character.
                    if not data.isascii() or decoder.getstate()[0] or not data:
                        try:
                            decoder.decode(data, final=not data)
                        except UnicodeDecodeError:
                            return _PER_LINE, "replace"
                    if not data:
                        return "utf-8", "strict"
                    data = stream.read(_UTF8_SCAN_CHUNK)
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"cannot read {self._path}: {exc}") from None

    def _sniff_delimiter(self, codec: str, errors: str) -> str:
        stack, text = self._open_text(codec, errors)
        with stack:
            try:
                sample = text.read(_SNIFF_CHARS)
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"cannot read {self._path}: {exc}") from None
            except UnicodeDecodeError as exc:
                raise _undecodable(self._path, codec, exc) from None
        first_line = sample.splitlines()[0] if sample else ""
        held = [candidate for candidate in _SNIFF_DELIMITERS if candidate in first_line]
        if len(held) == 1:
            # What the rules below come to whatever the sniffer says: it answers the one
            # candidate the header holds, or one it does not hold, which the header's count
            # then overrules. The sniffer's regular expressions cost a tenth of a rerun.
            return held[0]
        if len(sample) == _SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n") + 1]
        try:
            sniffed = csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
        except csv.Error:
            sniffed = ""
        if sniffed and sniffed in first_line:
            return sniffed
        # The header is the most regular line of a CSV: the candidate it holds most often wins.
        counts = {candidate: first_line.count(candidate) for candidate in _SNIFF_DELIMITERS}
        best = max(counts, key=lambda candidate: counts[candidate])
        return best if counts[best] else ","


def _undecodable(path: Path, codec: str, exc: UnicodeDecodeError, line: int = 0) -> SourceError:
    where = f" after line {line}" if line else ""
    bad = exc.object[exc.start : exc.end]
    return SourceError(
        f"{path} is not valid {codec}{where}: {exc.reason} (byte {bad!r});"
        " set encoding to the file's codec (e.g. 'cp1252'), or '<codec>:replace' to read on"
    )


def _unique_headers(raw: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    headers: list[str] = []
    for name in raw:
        if name in seen:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}.{seen[name]}"
            name = candidate
        seen.setdefault(name, 0)
        headers.append(name)
    return headers


class _Text(Protocol):
    """What the reader needs of decoded text: lines as ``newline=""`` splits them, and reads."""

    def __iter__(self) -> Iterator[str]: ...

    def read(self, size: int = -1, /) -> str: ...


class _Cp1252Line(str):
    """A line that was not valid UTF-8 and was read as cp1252 (see :class:`_PerLineText`)."""

    __slots__ = ()


class _PerLineText:
    """Text of a file that is not valid UTF-8 throughout, decided line by line: a line that is
    valid UTF-8 stays UTF-8, one that is not is read as cp1252 and marked (:class:`_Cp1252Line`)
    so its record can say so. Splitting at line breaks never cuts a UTF-8 character: its bytes
    are all above 0x7F. Lines split as ``newline=""`` text does: after LF, CRLF and a lone CR."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._lines = self._decoded(binary)
        self._pending = ""

    @staticmethod
    def _decoded(binary: IO[bytes]) -> Iterator[str]:
        for raw in binary:
            for part in _LONE_CR.split(raw):
                if not part:
                    continue
                try:
                    yield part.decode("utf-8")
                except UnicodeDecodeError:
                    yield _Cp1252Line(part.decode("cp1252", errors="replace"))

    def __iter__(self) -> Iterator[str]:
        if self._pending:
            pending, self._pending = self._pending, ""
            yield pending
        yield from self._lines

    def read(self, size: int = -1, /) -> str:
        parts = [self._pending]
        length = len(self._pending)
        for line in self._lines:
            if 0 <= size <= length:
                break
            parts.append(line)
            length += len(line)
        text = "".join(parts)
        if 0 <= size < len(text):
            text, self._pending = text[:size], text[size:]
        else:
            self._pending = ""
        return text


class _LineCountingRows(Protocol):
    """What csv.reader returns: rows, and how many lines it has taken from its input."""

    line_num: int

    def __next__(self) -> list[str]: ...


class _RowReader:
    """The parsing half: one call at a time (opening in a worker thread, batches on the loop)."""

    def __init__(
        self,
        *,
        open_text: Callable[[], tuple[ExitStack, _Text]],
        path: Path,
        label: str,
        codec: str,
        errors: str,
        delimiter: str,
        key_columns: tuple[str, ...],
        key_separator: str,
        columns: tuple[str, ...] | None,
        header: bool = True,
        plain_line_breaks: bool = False,
    ) -> None:
        if csv.field_size_limit() < MAX_FIELD_CHARS:
            csv.field_size_limit(MAX_FIELD_CHARS)
        self._open_text = open_text
        self._stack, self._text = open_text()
        self._path = path
        self._label = label
        self.encoding = codec
        self._count_damage = errors == "replace"
        self._key_separator = key_separator
        self.damaged_rows = 0
        self._lines_done = 0
        self._delimiter = delimiter
        self._record_lines: list[str] = []
        self._line_break = ""
        self._lines = self._physical_lines()
        self._rows = csv.reader(self._lines, delimiter=delimiter, strict=True)
        #: Items handed out so far, to find the place again after a fall back to careful reads.
        self._produced = 0
        #: The csv module reading the text layer directly, once the file's line breaks are
        #: known to be plain: no per-line bookkeeping. Any parse error sends the read back to
        #: the careful path (see _read_carefully_from_here).
        self._direct: _LineCountingRows | None = None
        self._direct_base = 0
        self._has_header = header
        self._per_line = codec == _PER_LINE
        try:
            self._headers = self._read_header() if header else list(columns or ())
            self._key_indices = self._indices(key_columns, "key column")
            self._selected = (
                None
                if columns is None or not header
                else self._indices(columns, "column listed in `columns`")
            )
        except BaseException:
            self.close()
            raise
        if plain_line_breaks and self._line_break == "\n":
            self._direct = csv.reader(self._text, delimiter=delimiter, strict=True)
            self._direct_base = self._lines_done

    def close(self) -> None:
        self._stack.close()

    def _physical_lines(self) -> Iterator[str]:
        # newline="" hands every line over untranslated, split at CR, LF and CRLF alike; only the
        # file's own line break (taken from the header line) advances the line count.
        line_break = ""
        for line in self._text:
            if not line_break:
                line_break = self._line_break = "\r" if line.endswith("\r") else "\n"
            if line.endswith(line_break):
                self._lines_done += 1
            self._record_lines.append(line)
            yield line

    def _next_row(self) -> list[str] | None:
        self._record_lines = []
        try:
            try:
                return next(self._rows)
            except csv.Error as exc:
                if "expected after" not in str(exc):
                    raise
                return self._reparse_leniently()
        except StopIteration:
            return None
        except UnicodeDecodeError as exc:
            raise _undecodable(self._path, self.encoding, exc, self._lines_done) from None
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(
                f"{self._label}: reading stopped after line {self._lines_done}: {exc}"
            ) from None

    def _reparse_leniently(self) -> list[str]:
        # Strict parsing refuses text after a closing quote (`"" ,"x"`, seen in real exports);
        # read that one record again the lenient way, which keeps such text, then go on strictly.
        # Strict stays the rule elsewhere: it is what reports a quote left open at the end.
        seen = self._record_lines
        lenient = csv.reader(itertools.chain(seen, self._lines), delimiter=self._delimiter)
        return next(lenient)

    def _read_header(self) -> list[str]:
        while True:
            try:
                row = self._next_row()
            except csv.Error as exc:
                raise SourceError(
                    f"{self._label}: the header row is not valid CSV: {exc}"
                ) from None
            if row is None:
                raise SourceError(f"{self._label} is empty: there is no header row")
            if row:
                return _unique_headers(row)

    def _indices(self, names: tuple[str, ...], role: str) -> list[int]:
        indices: list[int] = []
        for name in names:
            if name not in self._headers:
                if _looks_like_data(self._headers):
                    first = next(h for h in self._headers if _is_data_like(h))
                    raise SourceError(
                        f"{self._label}: this file seems to have no header row: its first row "
                        f"holds {_excerpt(first)!r}, text of a record rather than a column name; "
                        "set header = false and name every column in order with columns = [...]"
                    )
                close = difflib.get_close_matches(name, self._headers, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SourceError(
                    f"{self._label}: {role} {name!r} is not in the header{hint} "
                    f"Headers found: {', '.join(repr(h) for h in self._headers)}"
                )
            indices.append(self._headers.index(name))
        return indices

    def read_batch(self, size: int) -> list[SourceItem]:
        batch = self._read_direct(size) if self._direct is not None else self._read(size)
        self._produced += len(batch)
        return batch

    def _read_direct(self, size: int) -> list[SourceItem]:
        # As _read, with the csv module's own line count.
        rows = self._direct
        assert rows is not None
        batch: list[SourceItem] = []
        append = batch.append
        headers = self._headers
        width = len(headers)
        key_index = self._key_indices[0] if len(self._key_indices) == 1 else -1
        plain = not self._count_damage and self._selected is None and key_index >= 0
        base = self._direct_base
        while len(batch) < size:
            line = base + rows.line_num + 1
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error:
                return batch + self._read_carefully_from_here(len(batch), size - len(batch))
            except UnicodeDecodeError as exc:
                raise _undecodable(self._path, self.encoding, exc, line - 1) from None
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(
                    f"{self._label}: reading stopped after line {line - 1}: {exc}"
                ) from None
            if not row:
                continue
            if plain and len(row) == width and row[key_index]:
                # zip without strict: the length was just checked.
                fields = dict(zip(headers, row))  # noqa: B905
                append(SourceRecord(row[key_index], fields, None, f"line {line}"))
            else:
                append(self._to_item(row, line))
        return batch

    def _read_carefully_from_here(self, done_in_batch: int, size: int) -> list[SourceItem]:
        """The direct read met a parse error: open the file again, read it the careful way
        (line by line, with the lenient second look at a record) past what was already handed
        out, and go on that way. Rare, and exact: both ways give the same items."""
        produced = self._produced + done_in_batch
        self.close()
        self._stack, self._text = self._open_text()
        self._direct = None
        self._lines_done = 0
        self.damaged_rows = 0
        self._record_lines = []
        self._lines = self._physical_lines()
        self._rows = csv.reader(self._lines, delimiter=self._delimiter, strict=True)
        if self._has_header:
            self._read_header()
        skipped = 0
        while skipped < produced and self._read(1):
            skipped += 1
        return self._read(size)

    def _read(self, size: int) -> list[SourceItem]:
        # The loop every row goes through, so it keeps to locals; anything unusual (a short
        # row, an empty or composite key, decoding damage) goes through _to_item.
        batch: list[SourceItem] = []
        append = batch.append
        next_row = self._next_row
        headers = self._headers
        width = len(headers)
        key_index = self._key_indices[0] if len(self._key_indices) == 1 else -1
        plain = not self._count_damage and self._selected is None and key_index >= 0
        while len(batch) < size:
            line = self._lines_done + 1
            try:
                row = next_row()
            except csv.Error as exc:
                append(self._error(line, f"malformed CSV ({exc}); is a quote left open?"))
                continue
            if row is None:
                break
            if not row:
                continue
            if plain and len(row) == width and row[key_index]:
                fields = dict(zip(headers, row, strict=True))
                append(SourceRecord(row[key_index], fields, None, f"line {line}"))
            else:
                append(self._to_item(row, line))
        return batch

    def _error(self, line: int, reason: str) -> RecordError:
        return RecordError(key=f"line {line}", reason=reason, position=f"line {line}")

    def _to_item(self, row: list[str], line: int) -> SourceItem:
        headers = self._headers
        if len(row) > len(headers) and not any(row[len(headers) :]):
            row = row[: len(headers)]  # trailing empty fields, as spreadsheets export them
        if len(row) != len(headers):
            return self._error(line, f"expected {len(headers)} fields, found {len(row)}")
        key_parts = [row[index] for index in self._key_indices]
        for index, part in zip(self._key_indices, key_parts, strict=True):
            if not part:
                return self._error(line, f"the key column {headers[index]!r} is empty")
        key = self._key_separator.join(key_parts)
        if self._count_damage and any(_REPLACEMENT_CHAR in value for value in row):
            self.damaged_rows += 1
        if self._selected is None:
            fields = dict(zip(headers, row, strict=True))
        else:
            fields = {headers[index]: row[index] for index in self._selected}
        warnings: tuple[SourceWarning, ...] = ()
        if self._per_line and any(type(text) is _Cp1252Line for text in self._record_lines):
            warnings = _fallback_warnings(fields, line)
        return SourceRecord(key=key, fields=fields, position=f"line {line}", warnings=warnings)


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _is_data_like(cell: str) -> bool:
    return len(cell) > _HEADER_CELL_MAX or "\n" in cell or "\r" in cell


def _looks_like_data(headers: list[str]) -> bool:
    return any(_is_data_like(cell) for cell in headers)


def _fallback_warnings(fields: Mapping[str, str], line: int) -> tuple[SourceWarning, ...]:
    """One warning per value a cp1252 line may have decoded differently than meant: those
    holding non-ASCII text (ASCII reads the same in both codecs)."""
    return tuple(
        SourceWarning(
            kind="encoding_fallback",
            field=name,
            message=(
                f"line {line} is not valid UTF-8; read as cp1252: {_excerpt(value)!r} (if the "
                'whole file is cp1252, say encoding = "cp1252")'
            ),
        )
        for name, value in fields.items()
        if not value.isascii()
    ) or (
        SourceWarning(
            kind="encoding_fallback",
            message=f"line {line} is not valid UTF-8; read as cp1252",
        ),
    )
