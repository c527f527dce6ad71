"""DataFrame source: a pandas DataFrame handed over in Python, for library use.

A job names it as ``source = { type = "dataframe", key = "sku" }`` and the frame itself comes
with the call: ``await flowport.run(job, sources={"products": df})``. The command line has no
way to hand over a frame, so it refuses such a job and says so.

pandas is imported when a frame is read, never with this module: the job-file models import it
for every command, and the CLI must not pay pandas' import time.

Decisions a job author may want to know:

* The key is the ``key`` column (or several, joined with ``key_separator``). Without ``key``,
  the frame's index is the key (a MultiIndex's levels joined), and each named index level is
  also a field, as ``df.reset_index()`` would show it. A default ``RangeIndex`` makes a row's
  position its key: stable only while no row is inserted or removed before it, so prefer a key
  column for anything run twice.
* A key that is missing (None, NaN, NaT, ``pd.NA``) or empty makes its row a
  :class:`RecordError`. A float key that is a whole number is written as one (``17.0`` ->
  ``"17"``): an integer column that gains a missing value turns float in pandas, and its keys
  must not change with it. A repeated key is passed on as read: the runner, which sees every
  source's keys, refuses the repeat (the first row wins), as for CSV and SQL.
* ``position`` is ``"row N"``, counting rows from 1 (``df.iloc[N - 1]``), as the SQL source does.
* Values become JSON-like: NaN, NaT, None and ``pd.NA`` become None, exactly as the SQL source
  gives a NULL (the mapper treats None and an absent key alike); numpy scalars become plain
  ``int``/``float``/``bool``/``str``; ±inf becomes text (``"inf"``), as in the SQL source;
  Timestamps become ISO 8601, with their UTC offset when tz-aware and without one when naive
  (as the SQL source writes a naive datetime; a DateTime field reads it as UTC unless a
  ``datetime`` transform names its zone); Timedeltas ISO 8601 durations as the SQL source
  writes an interval (``-P0DT30S``); ``Decimal`` exact
  text; lists, tuples, arrays and dicts pass through with their elements converted. A value of
  any other type makes its row a :class:`RecordError` naming the column.
* Rows are read in slices of ``batch_size``, converted a column at a time: no copy of the whole
  frame is ever made, so what a run adds to the frame's own memory stays flat.
* :meth:`DataFrameSource.field_types` gives each field's Webflow type from its dtype (bool ->
  Switch, integer and float -> Number, datetime -> DateTime, anything else -> PlainText): a job
  that creates the collection uses it for a plainly mapped field whose type it leaves unsaid.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import itertools
import math
import uuid
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
from pydantic import Field, PrivateAttr

from flowport.base.errors import ConfigError, SourceError
from flowport.base.models import FieldType
from flowport.connectors import BatchedRecords, RecordError, SourceItem, SourceRecord, refuse_since
from flowport.connectors._keys import OptionalKeySourceConfig
from flowport.connectors.sql import iso_duration

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataFrameSource", "DataFrameSourceConfig", "field_type_of", "library_use_fix"]

_LIBRARY_USE_FIX = "pass the frame from Python: await flowport.run(job, sources={{{name!r}: df}})"


class _Frame:
    """Holds a bound frame. Compared by identity: pydantic compares private attributes when
    it compares models, and a DataFrame's ``==`` is elementwise."""

    __slots__ = ("frame", "label")

    def __init__(self, frame: pd.DataFrame, label: str) -> None:
        self.frame = frame
        self.label = label


class DataFrameSourceConfig(OptionalKeySourceConfig):
    """A pandas DataFrame given in Python (``flowport.run(job, sources={...})``)."""

    type: Literal["dataframe"] = "dataframe"
    key: str | tuple[str, ...] | None = Field(
        default=None,
        description=(
            "The column holding each row's stable key, or several columns joined with "
            "key_separator; omitted, the frame's index is the key."
        ),
    )
    key_separator: str = Field(
        default=":", min_length=1, description="Joins the values of a several-column key."
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Rows converted at a time; bounds memory held in flight.",
    )
    _bound: _Frame | None = PrivateAttr(default=None)

    @property
    def frame(self) -> pd.DataFrame | None:
        """The frame bound to this config, if any."""
        return self._bound.frame if self._bound is not None else None

    def bind(self, frame: pd.DataFrame, *, label: str) -> DataFrameSourceConfig:
        """This config reading ``frame``; ``label`` (the job collection) names the source."""
        bound = self.model_copy()
        bound._bound = _Frame(frame, label)
        return bound

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> DataFrameSource:
        if self._bound is None:
            raise ConfigError(
                "a dataframe source reads a pandas DataFrame given in Python, and none was "
                "given (the command line cannot give one)",
                key="source",
                fix=_LIBRARY_USE_FIX.format(name="<collection>"),
            )
        return DataFrameSource(
            self._bound.frame,
            key_columns=self.key_columns,
            key_separator=self.key_separator,
            batch_size=self.batch_size,
            label=self._bound.label,
        )


def library_use_fix(collection: str) -> str:
    """The fix for a dataframe collection given no frame."""
    return _LIBRARY_USE_FIX.format(name=collection)


def field_type_of(dtype: Any) -> FieldType:
    """The Webflow field type for a column of ``dtype``: bool -> Switch, integer and float ->
    Number, datetime (naive or tz-aware) -> DateTime, anything else -> PlainText."""
    from pandas.api import types

    if types.is_bool_dtype(dtype):
        return "Switch"
    if types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        return "Number"
    if types.is_datetime64_any_dtype(dtype):
        return "DateTime"
    return "PlainText"


class _Unconvertible(Exception):
    pass


class _Values:
    """Turns a column's values into JSON-like ones; pandas and numpy are imported here, when a
    frame is read, not with the module."""

    def __init__(self) -> None:
        import numpy as np
        import pandas as pd

        self._np = np
        self._pd = pd

    def column(self, series: pd.Series[Any], on_error: Callable[[int, str], None]) -> list[Any]:
        """One slice of a column, converted; ``on_error(offset, reason)`` for a value that
        cannot be."""
        kind = series.dtype.kind
        if kind in "iub" and isinstance(series.dtype, self._np.dtype):
            # numpy integers and bools: tolist() gives Python ones and none can be missing.
            return series.tolist()
        if kind == "f" and isinstance(series.dtype, self._np.dtype):
            floats = series.tolist()
            return [value if math.isfinite(value) else _non_finite(value) for value in floats]
        if kind == "M":
            return self._timestamps(series)
        converted: list[Any] = []
        append = converted.append
        plain = self.plain
        for offset, value in enumerate(series.tolist()):
            try:
                append(plain(value))
            except _Unconvertible as exc:
                on_error(offset, str(exc))
                append(None)
        return converted

    def _timestamps(self, series: pd.Series[Any]) -> list[str | None]:
        np, pd = self._np, self._pd
        if not isinstance(series.dtype, np.dtype):
            # tz-aware: each value's own UTC offset (it changes with daylight saving time).
            nat = pd.NaT
            return [None if stamp is nat else stamp.isoformat() for stamp in series]
        # Naive: numpy writes whole seconds as Timestamp.isoformat() does, in one call; the
        # values with a fraction of a second (rare) are written one by one.
        stamps = series.to_numpy()
        seconds = stamps.astype("datetime64[s]")
        texts: list[str | None] = np.datetime_as_string(seconds, unit="s").tolist()
        missing = np.isnat(stamps)
        for offset in np.flatnonzero((stamps != seconds) & ~missing).tolist():
            texts[offset] = pd.Timestamp(stamps[offset]).isoformat()
        for offset in np.flatnonzero(missing).tolist():
            texts[offset] = None
        return texts

    def key_texts(self, keys: pd.Series[Any] | pd.Index) -> list[str | None]:
        """Each key value as text; None when it is missing."""
        dtype = keys.dtype
        if isinstance(dtype, self._np.dtype) and dtype.kind in "iu":
            return list(map(str, keys.tolist()))
        key_text = self.key_text
        return [key_text(value) for value in keys.tolist()]

    def plain(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is bool:
            return value
        if kind is float:
            return value if math.isfinite(value) else _non_finite(value)
        if value is None or value is self._pd.NA or value is self._pd.NaT:
            return None
        return self._other(value)

    def _other(self, value: Any) -> Any:
        np, pd = self._np, self._pd
        if isinstance(value, np.datetime64 | np.timedelta64):
            value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
            return None if value is pd.NaT else self.plain(value)
        if isinstance(value, np.ndarray):
            return [self.plain(element) for element in value.tolist()]
        if isinstance(value, np.generic):
            return self.plain(value.item())
        if isinstance(value, dt.datetime | dt.date | dt.time):  # pd.Timestamp included
            return value.isoformat()
        if isinstance(value, dt.timedelta):  # pd.Timedelta included
            return iso_duration(value)
        if isinstance(value, str):  # a subclass (a StrEnum): its text
            return str.__str__(value)
        if isinstance(value, int | float):  # a subclass (an IntEnum): its number
            return self.plain(value.real)
        if isinstance(value, decimal.Decimal):
            return format(value, "f") if value.is_finite() else str(value)
        if isinstance(value, Mapping):
            return {str(key): self.plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.plain(item) for item in value]
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, uuid.UUID):
            return str(value)
        raise _Unconvertible(f"a value of type {type(value).__module__}.{type(value).__qualname__}")

    def key_text(self, value: Any) -> str | None:
        """A key value as text; None when it is missing."""
        try:
            value = self.plain(value)
        except _Unconvertible:
            return str(value)  # a Period, an Interval: their text is a fine key
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


def _non_finite(value: float) -> str | None:
    return None if math.isnan(value) else str(value)


class DataFrameSource(BatchedRecords):
    """Reads one DataFrame; see the module docstring for what it decides."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        key_columns: tuple[str, ...] | None = None,
        key_separator: str = ":",
        batch_size: int = 500,
        label: str = "frame",
    ) -> None:
        self._frame = frame
        self._key_columns = key_columns
        self._key_separator = key_separator
        self._batch_size = batch_size
        self._label = label

    @property
    def name(self) -> str:
        return f"dataframe:{self._label}"

    @property
    def incremental(self) -> bool:
        return False

    def __repr__(self) -> str:
        return (
            f"DataFrameSource({self._label!r}, rows={len(self._frame)}, key={self._key_columns!r})"
        )

    async def estimated_total(self, since: str | None = None) -> int | None:
        return len(self._frame)

    async def check(self) -> None:
        self.fields()

    def fields(self) -> list[str]:
        """The field names each record holds, in order: the named index levels when the index
        is the key, then the columns. :class:`SourceError` when two are the same or a key
        column is absent."""
        columns = [_field_name(label) for label in self._frame.columns]
        names = [*(name for _, name in self._index_fields()), *columns]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise SourceError(
                f"{self.name}: the field name(s) {', '.join(map(repr, repeated))} appear more "
                "than once among the columns and named index levels; rename them apart"
            )
        for key in self._key_columns or ():
            if key not in columns:
                raise SourceError(
                    f"{self.name}: key column {key!r} is not in the frame. "
                    f"Columns found: {', '.join(map(repr, columns))}"
                )
        return names

    def _index_fields(self) -> list[tuple[int, str]]:
        """(level, field name) of each named index level that is also a field: only when the
        index is the key."""
        if self._key_columns is not None:
            return []
        names = self._frame.index.names
        return [(level, _field_name(name)) for level, name in enumerate(names) if name is not None]

    def field_types(self) -> dict[str, FieldType]:
        """Each field's Webflow type, from its dtype (see :func:`field_type_of`)."""
        index = self._frame.index
        dtypes = [index.get_level_values(level).dtype for level, _ in self._index_fields()]
        dtypes.extend(self._frame.dtypes)
        return {
            name: field_type_of(dtype) for name, dtype in zip(self.fields(), dtypes, strict=True)
        }

    async def record_batches(
        self, since: str | None = None
    ) -> AsyncGenerator[list[SourceItem], None]:
        """The rows ``records()`` yields, ``batch_size`` at a time."""
        refuse_since(self.name, since, "a DataFrame has no change cursor")
        names = self.fields()
        values = _Values()
        total = len(self._frame)
        for start in range(0, total, self._batch_size):
            # Converted on the loop a bounded slice at a time, as the CSV source parses; the
            # checkpoint lets other tasks run between slices.
            yield self._batch(values, names, start, min(start + self._batch_size, total))
            await anyio.lowlevel.checkpoint()

    def _batch(self, values: _Values, names: list[str], start: int, stop: int) -> list[SourceItem]:
        # A row slice by iloc is a view (copy-on-write): the only copies made are this slice's
        # converted values, a column at a time.
        rows = self._frame.iloc[start:stop]
        problems: dict[int, str] = {}
        series: list[pd.Series[Any]] = [
            rows.index.get_level_values(level).to_series() for level, _ in self._index_fields()
        ]
        series.extend(rows.iloc[:, position] for position in range(rows.shape[1]))
        columns: list[list[Any]] = []
        for name, column in zip(names, series, strict=True):

            def note(offset: int, reason: str, name: str = name) -> None:
                problems.setdefault(offset, f"column {name!r} holds {reason}")

            columns.append(values.column(column, note))
        cells: Iterable[tuple[Any, ...]] = (
            zip(*columns, strict=True) if columns else itertools.repeat((), stop - start)
        )
        batch: list[SourceItem] = []
        append = batch.append
        # The loop every row goes through: locals only, and zip without strict (every list
        # here has one entry per row of the slice, every row one value per name).
        for number, key, row in zip(itertools.count(start + 1), self._keys(values, rows), cells):
            if type(key) is str and not problems:
                append(SourceRecord(key, dict(zip(names, row)), None, f"row {number}"))  # noqa: B905
            else:
                append(self._unusual(key, row, names, problems.get(number - start - 1), number))
        return batch

    def _unusual(
        self,
        key: str | _MissingKey,
        row: tuple[Any, ...],
        names: list[str],
        problem: str | None,
        number: int,
    ) -> SourceItem:
        position = f"row {number}"
        if isinstance(key, _MissingKey):
            return RecordError(key=position, reason=key.reason, position=position)
        if problem is not None:
            return RecordError(key=key, reason=problem, position=position)
        return SourceRecord(key, dict(zip(names, row, strict=True)), None, position)

    def _keys(self, values: _Values, rows: pd.DataFrame) -> list[str | _MissingKey]:
        parts: list[tuple[str, list[str | None]]] = []
        if self._key_columns is None:
            index = rows.index
            for level, label in enumerate(index.names):
                what = "the index" if label is None else f"the index level {label!r}"
                parts.append((what, values.key_texts(index.get_level_values(level))))
        else:
            parts = [
                (f"the key column {key!r}", values.key_texts(rows[key]))
                for key in self._key_columns
            ]
        if len(parts) == 1:
            what, texts = parts[0]
            return [text if text else _MissingKey.of(what, text) for text in texts]
        keys: list[str | _MissingKey] = []
        for row_parts in zip(*(texts for _, texts in parts), strict=True):
            missing = next((i for i, text in enumerate(row_parts) if not text), None)
            if missing is None:
                keys.append(self._key_separator.join(cast("tuple[str, ...]", row_parts)))
            else:
                keys.append(_MissingKey.of(parts[missing][0], row_parts[missing]))
        return keys


class _MissingKey:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @classmethod
    def of(cls, what: str, text: str | None) -> _MissingKey:
        return cls(f"{what} is {'empty' if text == '' else 'missing'}")


def _field_name(label: Hashable) -> str:
    return label if isinstance(label, str) else str(label)
