"""flowport as a dlt destination: a dlt pipeline loads its resources into Webflow collections.

::

    from flowport.pipeline.dlt_destination import flowport_webflow

    pipeline = dlt.pipeline("shop", destination=flowport_webflow(job="shop.toml"))
    pipeline.run(products())  # into the job's collection whose source is type = "dlt"

dlt hands a destination each load file of a table (``batch_size=0``: the file's path, see dlt's
"Custom destination: Reverse ETL" docs); each file becomes one flowport run of the collection
that takes the table, through the same stages as any run: mapping, decide, the writer with its
rate budget, and the checkpoint log. So the guarantees are flowport's, not dlt's:

* Exactly once. dlt retries a load job (and the next ``pipeline.run`` finishes a package left
  pending) from the start of its file; the checkpoint says which rows are already in Webflow,
  so a retry sends only what is not, and a create whose answer was lost is reconciled by
  reading back, never sent twice. A rerun of the same rows sends nothing.
* Per-item errors are never silent: when a row fails (a value Webflow refuses, a missing key),
  the load job fails with :class:`WebflowItemErrors`, naming each row and why, after every other
  row of the file is written. dlt raises it from ``pipeline.run`` (``PipelineStepFailed``) and
  keeps the package pending: fix the data, drop the package
  (``pipeline.abort_packages()``) and load again; the rows already written are unchanged.
* A run that stops (Webflow unreachable past the retries, another run holding the job's lock)
  is transient for dlt, which tries the job again; past dlt's retry limit the package stays
  pending for the next ``pipeline.run``.

Rows are upserted by key: whatever the write disposition, nothing is removed from Webflow
(a load holds only the rows it brought). A collection taking a dlt table may not reference
another collection of the job (each load runs that collection alone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from flowport.base.errors import ConfigError, FatalError
from flowport.base.models import FieldType
from flowport.connectors.dlt_load import DltSourceConfig
from flowport.pipeline.cli import lock_job
from flowport.pipeline.jobfile import (
    CollectionJob,
    CollectionSchemaSpec,
    Job,
    SchemaField,
    WriteOrder,
    load_job,
)
from flowport.pipeline.logging import NullSink, ProgressSink
from flowport.pipeline.runner import RunSummary, run_job
from flowport.pipeline.state import open_job_log

try:
    import dlt
    from dlt.common.destination.exceptions import (
        DestinationTerminalException,
        DestinationTransientException,
    )
    from dlt.common.json import json as dlt_json
    from dlt.common.schema import TTableSchema
    from dlt.common.storages import FileStorage
    from dlt.common.typing import TDataItems
except ModuleNotFoundError as missing:  # the core never imports this module: dlt is an extra
    if (missing.name or "").partition(".")[0] != "dlt":
        raise
    raise ImportError(
        "flowport's dlt destination needs dlt; install it with: pip install 'flowport[dlt]'"
    ) from None

__all__ = ["FlowportRunStopped", "WebflowItemErrors", "flowport_webflow"]

#: Rows read from a load file at a time: bounds what a load holds in memory.
ROWS_PER_READ = 500
#: Failed rows a :class:`WebflowItemErrors` message lists; all of them are in its ``errors``.
ERRORS_LISTED = 20

logger = logging.getLogger("flowport.dlt")


class WebflowItemErrors(DestinationTerminalException):
    """Rows of a load that became per-item errors, each ``(key, reason)``; the load's other
    rows are written. Terminal for dlt: the same rows would fail the same way again."""

    def __init__(self, collection: str, table: str, errors: list[tuple[str, str]]) -> None:
        self.collection = collection
        self.table = table
        self.errors = errors
        listed = [f"  {key}: {reason}" for key, reason in errors[:ERRORS_LISTED]]
        if len(errors) > ERRORS_LISTED:
            more = len(errors) - ERRORS_LISTED
            listed.append(f"  ... and {more} more (`flowport errors JOB` lists them all)")
        shown = "\n".join(listed)
        super().__init__(
            f"{len(errors)} {'row' if len(errors) == 1 else 'rows'} of dlt table {table!r} "
            f"{'was' if len(errors) == 1 else 'were'} not written to Webflow "
            f"collection {collection!r}:\n{shown}"
            "\nThe other rows are written. Fix these rows and load them again "
            "(pipeline.abort_packages() first drops this package)."
        )


class FlowportRunStopped(DestinationTransientException):
    """The flowport run of a load file stopped before its end; dlt tries the job again, and
    the checkpoint makes the retry send only what is not in Webflow yet."""


class _LoggingSink(NullSink):
    """The run's messages (waits, warnings, errors) to the ``flowport.dlt`` logger."""

    _LEVELS: Mapping[str, int] = types.MappingProxyType(
        {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}
    )

    def message(self, level: str, text: str, **fields: Any) -> None:
        logger.log(self._LEVELS.get(level, logging.INFO), "%s", text)


def flowport_webflow(
    job: Job | str | Path,
    *,
    collection: str | None = None,
    progress: ProgressSink | None = None,
    destination_name: str = "flowport_webflow",
) -> dlt.destinations.destination:
    """A dlt destination writing into the Webflow collections of ``job`` (a job file or a
    loaded :class:`Job`): each dlt table goes to the collection whose source is
    ``{ type = "dlt" }`` and names it (``table = ...``, default: the collection's own name),
    or, with ``collection``, every table to that collection. A job that cannot serve is a
    :class:`ConfigError` here, before dlt extracts anything."""
    loaded = job if isinstance(job, Job) else load_job(Path(job))
    takers = _dlt_collections(loaded)
    if collection is not None and collection not in takers:
        raise ConfigError(
            f"collection {collection!r} does not take a dlt table",
            fix=f'give it source = {{ type = "dlt" }} in {loaded.path}; '
            f"dlt collections: {', '.join(takers) or 'none'}",
        )
    for name in [collection] if collection is not None else takers:
        _alone(loaded, name)  # refuses a collection that cannot run alone, now
    sink = progress or _LoggingSink()

    def flowport_webflow_load(items: TDataItems | str, table: TTableSchema) -> None:
        # batch_size=0 below: dlt passes the load file's path, never rows.
        assert isinstance(items, str), "flowport's dlt destination takes whole load files"
        _load_file(loaded, items, table, collection, sink)

    return dlt.destinations.destination(
        destination_callable=flowport_webflow_load,
        destination_name=destination_name,
        # The file, not batches of rows: one flowport run per file, whose checkpoint knows
        # which rows are done (dlt's own row offset would only repeat what it knows).
        batch_size=0,
        loader_file_format="typed-jsonl",
        # Column names as the resource gives them: the job's mapping names them.
        naming_convention="direct",
        skip_dlt_columns_and_tables=True,
        # Nested data stays in its row as JSON, where a mapping can reach it.
        max_table_nesting=0,
        # One run of the job at a time: its checkpoint log and lock are the job's.
        max_parallel_load_jobs=1,
    )


def _dlt_collections(job: Job) -> list[str]:
    return [
        name
        for name, collection in job.collections.items()
        if isinstance(collection.source, DltSourceConfig)
    ]


def _collection_for(job: Job, table: str, collection: str | None) -> str:
    if collection is not None:
        return collection
    takers = [name for name in _dlt_collections(job) if (_source(job, name).table or name) == table]
    if not takers:
        raise ConfigError(
            f"no collection of {job.path} takes the dlt table {table!r}",
            fix=f'set source = {{ type = "dlt", table = "{table}" }} on the collection that '
            "takes it, or name one with flowport_webflow(..., collection=...)",
        )
    if len(takers) > 1:
        raise ConfigError(
            f"collections {', '.join(takers)} all take the dlt table {table!r}",
            fix="name a different table on each (source.table)",
        )
    return takers[0]


def _source(job: Job, name: str) -> DltSourceConfig:
    source = job.collections[name].source
    assert isinstance(source, DltSourceConfig)
    return source


def _alone(
    job: Job,
    name: str,
    source: DltSourceConfig | None = None,
    columns: Mapping[str, Mapping[str, object]] | None = None,
) -> Job:
    """``job`` reduced to the collection ``name`` (its source replaced by ``source``, and
    the schema it creates completed from the dlt table's ``columns``)."""
    collection = job.collections[name]
    others = sorted(set(collection.references().values()) - {name})
    if others:
        raise ConfigError(
            f"collection {name!r} takes a dlt table and references {', '.join(others)}: a dlt "
            "load runs its collection alone, so it cannot resolve those references",
            key=f"collections.{name}",
            fix="load the referenced collections with flowport run, and drop the reference "
            "fields from this collection's mapping",
        )
    if source is not None:
        collection = collection.model_copy(update={"source": source})
        if columns is not None and collection.create_missing:
            collection = _with_inferred_schema(collection, columns)
    order = job.write_order()
    alone = WriteOrder(
        names=(name,),
        cycles=tuple(cycle for cycle in order.cycles if cycle == (name,)),
        deferred={name: order.deferred[name]} if name in order.deferred else {},
    )
    return dataclasses.replace(
        job, collections=types.MappingProxyType({name: collection}), _order=alone
    )


#: The Webflow field type a plainly mapped field is created with, by its dlt column's type;
#: a column of another type (json, binary, time) needs its type in the job's schema.
FIELD_TYPES: Mapping[str, FieldType] = types.MappingProxyType(
    {
        "text": "PlainText",
        "bool": "Switch",
        "bigint": "Number",
        "double": "Number",
        "decimal": "Number",
        "wei": "Number",
        "timestamp": "DateTime",
        "date": "DateTime",
    }
)


def _with_inferred_schema(
    collection: CollectionJob, columns: Mapping[str, Mapping[str, object]]
) -> CollectionJob:
    """As for a DataFrame (pipeline/frames.py): each mapped field that reads a column as it is
    (no transform, no reference) and whose type the job leaves unsaid gets the column's."""
    spec = collection.collection_schema or CollectionSchemaSpec()
    fields = dict(spec.fields)
    for slug, mapping in collection.field_mappings().items():
        if slug in ("name", "slug") or slug in fields or mapping.transforms:
            continue
        if mapping.source is None or mapping.reference is not None:
            continue
        found = FIELD_TYPES.get(str(columns.get(mapping.source, {}).get("data_type")))
        if found is not None:
            fields[slug] = SchemaField(type=found)
    schema = spec.model_copy(update={"fields": fields})
    return collection.model_copy(update={"collection_schema": schema})


def _load_file(
    job: Job, path: str, table: TTableSchema, collection: str | None, sink: ProgressSink
) -> None:
    """One load file of ``table`` through one flowport run; see the module docstring for how
    its end becomes dlt's (completed, terminal, transient)."""
    table_name = str(table["name"])
    try:
        if ".typed-jsonl" not in Path(path).name and ".jsonl" not in Path(path).name:
            raise ConfigError(
                f"the load file {Path(path).name} of dlt table {table_name!r} is not JSON lines",
                fix='drop loader_file_format from pipeline.run: flowport reads "typed-jsonl"',
            )
        name = _collection_for(job, table_name, collection)
        columns = dict(table.get("columns") or {})
        primary_key = tuple(c for c, spec in columns.items() if spec.get("primary_key"))
        source = _source(job, name).bind(
            functools.partial(_row_batches, path, tuple(columns)),
            label=table_name,
            primary_key=primary_key,
        )
        with lock_job(job):
            summary = _run_in_own_loop(_alone(job, name, source, columns), sink)
            errors = _errors(job, name, source.keys_read) if summary.exit_code == 1 else []
    except ConfigError as error:
        raise DestinationTerminalException(str(error)) from None
    except FatalError as error:  # another run holds the job's lock
        raise FlowportRunStopped(f"{job.path}: {error}") from None
    _settle(summary, name, table_name, errors)


def _run_in_own_loop(job: Job, sink: ProgressSink) -> RunSummary:
    """The run in an event loop of its own: in dlt's worker thread, or, where dlt loads in the
    calling thread and that thread runs a loop (a notebook), in a thread started for it."""

    def run() -> RunSummary:
        return anyio.run(run_job, job, sink)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(1, "flowport-dlt") as pool:
        return pool.submit(run).result()


def _settle(
    summary: RunSummary, collection: str, table: str, errors: list[tuple[str, str]]
) -> None:
    if summary.aborted is not None:
        raise FlowportRunStopped(
            f"the flowport run of dlt table {table!r} into {collection!r} stopped: "
            f"{summary.aborted}; dlt loads the file again, and rows already written are not sent"
        )
    counts = summary.collections.get(collection, {})
    if summary.exit_code != 0:
        if not errors:
            # Not a row error (a conflict left unwritten, a refused publish): the counts say.
            errors = [("(counts)", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))]
        raise WebflowItemErrors(collection, table, errors)
    logger.info("dlt table %r -> %s: %s", table, collection, counts)


def _errors(job: Job, collection: str, keys: frozenset[str]) -> list[tuple[str, str]]:
    """This load's failed rows, as the checkpoint log has them: (key, reason)."""
    log = open_job_log(job, create=False)
    if log is None:
        return []
    try:
        return [
            (item.key, _reason(item.last_error, item.error_field))
            for item in log.errors()
            if item.collection == collection and item.key in keys and item.state == "failed"
        ]
    finally:
        log.close()


def _reason(error: str | None, field: str | None) -> str:
    text = error or "failed"
    return f"{field}: {text}" if field and field not in text else text


def _row_batches(path: str, columns: tuple[str, ...]) -> Iterator[list[dict[str, Any]]]:
    """The load file's rows, :data:`ROWS_PER_READ` at a time, with the table's columns only
    (dlt's own ``_dlt_id`` and ``_dlt_load_id`` are left out of them)."""
    wanted = frozenset(columns)
    batch: list[dict[str, Any]] = []
    with contextlib.closing(FileStorage.open_zipsafe_ro(path)) as handle:
        for line in handle:
            rows = dlt_json.typed_loads(line)
            for row in rows if isinstance(rows, list) else [rows]:
                batch.append({k: v for k, v in row.items() if k in wanted})
                if len(batch) >= ROWS_PER_READ:
                    yield batch
                    batch = []
    if batch:
        yield batch
