"""The one conformance suite: every connector, over real data, against the Source contract."""

from __future__ import annotations

import gc
import json
from contextlib import aclosing
from pathlib import Path

import pytest

from flowport.base.errors import FatalError
from flowport.connectors import (
    BatchedSource,
    CountableSource,
    RecordError,
    Source,
    SourceItem,
    SourceRecord,
)
from flowport.connectors.sql import SqlSource

from .cases import CASES, CaseFactory, ConnectorCase


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> ConnectorCase:
    factory: CaseFactory = request.param
    return factory(request, tmp_path)


async def read_all(source: Source, since: str | None = None) -> list[SourceItem]:
    async with aclosing(source.records(since)) as items:
        return [item async for item in items]


def only_records(items: list[SourceItem]) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def test_it_is_a_source(case: ConnectorCase) -> None:
    assert isinstance(case.source, Source)
    assert isinstance(case.source.name, str)
    assert case.source.name
    assert isinstance(case.source.incremental, bool)
    assert (case.since is not None) == case.source.incremental


async def test_full_read_meets_the_contract(case: ConnectorCase) -> None:
    items = await read_all(case.source)
    records = only_records(items)
    errors = [item for item in items if isinstance(item, RecordError)]
    assert len(records) == case.expected_records
    assert len(errors) == case.expected_errors, errors[:5]
    assert len(records) + len(errors) == len(items)

    keys = [record.key for record in records]
    assert all(isinstance(key, str) and key for key in keys)
    assert len(set(keys)) == len(keys), "keys must be unique within a run"
    for item in items:
        assert item.position is None or isinstance(item.position, str)
    for record in records:
        assert record.cursor is None or isinstance(record.cursor, str)
        # Strict JSON: NaN or a datetime would fail here.
        json.dumps({"key": record.key, "fields": dict(record.fields)}, allow_nan=False)

    by_key = {record.key: record for record in records}
    assert case.sample_key in by_key
    sample = by_key[case.sample_key].fields
    for name, value in case.sample_fields.items():
        assert name in sample, f"{name!r} missing; fields are {sorted(sample)}"
        assert sample[name] == value, name


async def test_an_estimated_total_covers_every_item(case: ConnectorCase) -> None:
    if not isinstance(case.source, CountableSource):
        pytest.skip(f"{case.source.name} gives no count before reading (allowed)")
    total = await case.source.estimated_total()
    items = await read_all(case.source)
    assert total is not None
    # Exact for a database; a CSV counts lines, which fields with line breaks inflate.
    assert total >= len(items)
    if isinstance(case.source, SqlSource):
        assert total == len(items)
    if case.since is not None:
        later = await case.source.estimated_total(case.since)
        assert later is not None
        assert later >= len(await read_all(case.source, case.since))


async def test_two_reads_are_identical(case: ConnectorCase) -> None:
    first = only_records(await read_all(case.source))
    second = only_records(await read_all(case.source))
    assert [(r.key, dict(r.fields), r.cursor) for r in first] == [
        (r.key, dict(r.fields), r.cursor) for r in second
    ]


async def test_batches_hold_what_records_yields(case: ConnectorCase) -> None:
    # The runner reads every source a batch at a time: the source's own batches when it has
    # them (record_batches), else records() grouped. Either way, the same items in order.
    from flowport.pipeline.runner import LOOKUP_CHUNK, _read_batches

    source = case.source
    async with aclosing(_read_batches(source, None)) as batches:
        sizes = []
        batched: list[SourceItem] = []
        async for batch in batches:
            sizes.append(len(batch))
            batched.extend(batch)
    assert batched == await read_all(source)
    assert all(sizes), "an empty batch"
    if not isinstance(source, BatchedSource):
        assert all(size == LOOKUP_CHUNK for size in sizes[:-1])


async def test_closing_early_releases_everything(case: ConnectorCase) -> None:
    async with aclosing(case.source.records()) as items:
        first = await anext(items)
    assert isinstance(first, SourceRecord | RecordError)
    # Unclosed sessions and files announce themselves when collected; warnings are errors.
    gc.collect()
    if case.release_check is not None:
        await case.release_check()


async def test_since_reads_a_subset_or_is_refused(case: ConnectorCase) -> None:
    if not case.source.incremental:
        with pytest.raises(FatalError, match="incremental"):
            await read_all(case.source, since="2020-01-01T00:00:00")
        return
    assert case.since is not None
    full = {record.key for record in only_records(await read_all(case.source))}
    later = only_records(await read_all(case.source, since=case.since))
    later_keys = {record.key for record in later}
    assert later_keys < full
    assert len(later) == case.expected_since_records
    assert all(record.cursor is not None for record in later)
    # Reading past the newest cursor yields nothing.
    newest = max(record.cursor for record in later if record.cursor is not None)
    assert only_records(await read_all(case.source, since=newest)) == []


def test_name_and_repr_hold_no_secret(case: ConnectorCase) -> None:
    for secret in case.secrets:
        assert secret not in case.source.name
        assert secret not in repr(case.source)
