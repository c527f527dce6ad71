"""The runner: for each collection, source → mapping → batches of ≤ 100 → writer.

Stages are joined by small bounded streams and every task is owned by one task group per
collection, so a slow Webflow slows the source down instead of filling memory. Collections are
written in the order their references need. Every record ends as created, updated, unchanged,
skipped, or failed with a reason in the checkpoint log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream
from pydantic import SecretStr

from connectors import RecordError, SourceItem, SourceRecord
from mappings import (
    MappedItem,
    MappingFailure,
    SkippedRecord,
    compile_mapping,
    content_hash,
)
from mappings.slugs import slug_with_suffix
from pipeline.checkpoint import Acknowledged, CheckpointLog, ItemFailure, ItemState
from pipeline.errors import ConfigError, FatalError, RetriableError
from pipeline.jobfile import Job
from pipeline.logging import ProgressSink
from pipeline.ratebudget import RateBudget
from pipeline.webflow.client import WebflowClient
from pipeline.webflow.models import CollectionSchema
from pipeline.writer import Batch, Operation, PendingItem, Target, Writer

__all__ = ["RunSummary", "run_job", "validate_job"]

#: Records looked up in the checkpoint log in one query.
LOOKUP_CHUNK = 500
#: Marks the stored hash of an item whose deferred references are not set yet.
REFERENCES_PENDING = "~references-pending"
#: Batches waiting for a worker: small, so memory stays flat and backpressure reaches the source.
BATCH_BUFFER = 2


@dataclass(slots=True)
class RunSummary:
    job: str
    collections: dict[str, dict[str, int]] = field(default_factory=dict)
    aborted: str | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    site_published: bool = False

    def count(self, collection: str, outcome: str, n: int = 1) -> None:
        per = self.collections.setdefault(collection, {})
        per[outcome] = per.get(outcome, 0) + n

    def total(self, outcome: str) -> int:
        return sum(per.get(outcome, 0) for per in self.collections.values())

    @property
    def exit_code(self) -> int:
        if self.aborted is not None:
            return 3
        if self.total("failed") or self.total("publish_failed") or self.total("unresolved"):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "exit_code": self.exit_code,
            "aborted": self.aborted,
            "collections": self.collections,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "seconds": round(self.seconds, 3),
            "site_published": self.site_published,
        }


class _NullProgress:
    def collection_started(self, collection: str, total: int | None) -> None:
        pass

    def advanced(
        self, collection: str, *, done: int = 0, failed: int = 0, unchanged: int = 0
    ) -> None:
        pass

    def retried(self, collection: str, *, status: int | None, rate_limited: bool) -> None:
        pass

    def message(self, level: str, text: str, **fields: Any) -> None:
        pass

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Destination:
    base_url: str
    token: SecretStr
    site_id: str


@contextlib.asynccontextmanager
async def _destination(job: Job) -> AsyncIterator[_Destination]:
    destination = job.destination
    if destination.api == "sandbox":
        # The embedded sandbox keeps its state beside the checkpoint log, so a rerun sees what
        # the last run wrote, exactly as a real site would.
        from pipeline.sandbox import Sandbox, SandboxConfig

        token = secrets.token_hex(16)
        config = SandboxConfig(
            tokens=(token,),
            rate_limit=job.rate_limit(),
            window_seconds=destination.rate_window_seconds,
            state_file=job.state_dir / "sandbox-state.jsonl",
        )
        async with Sandbox(config) as sandbox:
            yield _Destination(sandbox.base_url, SecretStr(token), sandbox.site_id)
        return
    site_id = destination.site_id
    if site_id is None:
        raise ConfigError(
            'is required unless api = "sandbox"',
            key="destination.site_id",
            fix="set site_id to the id of the Webflow site to write to",
        )
    yield _Destination(str(destination.api), job.token(), site_id)


async def run_job(job: Job, progress: ProgressSink | None = None) -> RunSummary:
    sink: ProgressSink = progress or _NullProgress()
    summary = RunSummary(job=job.path.stem)
    started = time.perf_counter()
    job.state_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = CheckpointLog.open(job.state_dir / "checkpoint.sqlite")
    run_id = checkpoint.begin_run()
    writer: Writer | None = None
    try:
        async with _destination(job) as destination:
            budget = RateBudget(job.rate_limit(), job.destination.rate_window_seconds)
            async with WebflowClient(
                destination.base_url,
                destination.token,
                budget=budget,
                timeout_seconds=job.destination.timeout_seconds,
                max_connections=job.destination.concurrency,
            ) as client:
                writer = Writer(
                    client,
                    checkpoint,
                    run_id,
                    external_key_fields={
                        name: c.external_key_field
                        for name, c in job.collections.items()
                        if c.external_key_field
                    },
                    on_retry=lambda collection, error: _note_retry(sink, collection, error),
                )
                schemas = await _prepare_collections(
                    job, writer, destination.site_id, checkpoint, sink
                )
                second_pass: list[_DeferredItem] = []
                for name in job.write_order():
                    await _run_collection(
                        job, name, schemas[name], writer, checkpoint, summary, sink, second_pass
                    )
                await _set_deferred_references(
                    job, second_pass, schemas, writer, checkpoint, summary
                )
                if job.run.publish_site and summary.exit_code == 0:
                    await writer.call(
                        "", functools.partial(client.publish_site, destination.site_id)
                    )
                    summary.site_published = True
    except FatalError as error:
        summary.aborted = str(error)
        sink.message("error", f"run stopped: {error}")
    finally:
        # Synchronous on purpose: a cancellation cannot interrupt the final flush.
        if writer is not None:
            summary.requests = writer.stats.requests
            summary.retries = writer.stats.retries
            summary.rate_limited = writer.stats.rate_limited
        summary.seconds = time.perf_counter() - started
        outcome = "aborted" if summary.aborted else ("partial" if summary.exit_code else "ok")
        checkpoint.finish_run(run_id, outcome, summary.as_dict())
        checkpoint.close()
    return summary


def _note_retry(sink: ProgressSink, collection: str, error: RetriableError) -> None:
    sink.retried(collection, status=error.status, rate_limited=error.status == 429)


async def validate_job(job: Job) -> list[str]:
    """Check the target schema against the job, writing nothing: one line per problem."""
    problems: list[str] = []
    budget = RateBudget(job.rate_limit(), job.destination.rate_window_seconds)
    async with (
        _destination(job) as destination,
        WebflowClient(destination.base_url, destination.token, budget=budget) as client,
    ):
        existing = await client.list_collections(destination.site_id)
        for name, collection in job.collections.items():
            found = _find_collection(existing, collection.target)
            if found is None:
                if not collection.create_missing:
                    problems.append(
                        f"collections.{name}.target: no collection '{collection.target}' "
                        "on the site (set create_missing = true to create it)"
                    )
                continue
            schema = await client.get_collection(found.id)
            try:
                compile_mapping(
                    collection.mapping(),
                    schema,
                    collection=name,
                    resolver=_NoReferences(),
                    slugs=_NoSlugs(),
                )
            except ConfigError as error:
                problems.append(str(error))
    return problems


class _NoReferences:
    def webflow_id(self, collection: str, source_key: str) -> str | None:
        return None


class _NoSlugs:
    def claim(self, source_key: str, wanted: str) -> str:
        return wanted


def _find_collection(existing: Sequence[CollectionSchema], target: str) -> CollectionSchema | None:
    lowered = target.lower()
    for candidate in existing:
        if lowered in (
            candidate.id.lower(),
            candidate.slug.lower(),
            candidate.display_name.lower(),
        ):
            return candidate
    return None


async def _prepare_collections(
    job: Job,
    writer: Writer,
    site_id: str,
    checkpoint: CheckpointLog,
    sink: ProgressSink,
) -> dict[str, CollectionSchema]:
    """Find (or, when asked, create) each target collection and its fields; read its schema."""
    client = writer.client
    existing = await writer.call("", functools.partial(client.list_collections, site_id))
    ids: dict[str, str] = {}
    for name in job.write_order():
        collection = job.collections[name]
        found = _find_collection(existing, collection.target)
        if found is None:
            if not collection.create_missing:
                raise ConfigError(
                    f"no collection '{collection.target}' on site {site_id}",
                    key=f"collections.{name}.target",
                    fix="create it in Webflow, or set create_missing = true with a schema",
                )
            sink.message("info", f"creating collection {collection.target}")
            found = await writer.call(
                name,
                functools.partial(
                    client.create_collection,
                    site_id,
                    display_name=collection.target,
                    singular_name=collection.schema_singular_name(),
                    slug=collection.target_slug(),
                ),
                idempotent=False,
            )
        ids[name] = found.id
    schemas: dict[str, CollectionSchema] = {}
    for name in job.write_order():
        collection = job.collections[name]
        read_schema = functools.partial(client.get_collection, ids[name])
        schema = await writer.call(name, read_schema)
        if collection.create_missing:
            for definition in collection.missing_fields(schema, ids):
                sink.message("info", f"creating field {definition.get('displayName')} in {name}")
                await writer.call(
                    name,
                    functools.partial(client.create_field, schema.id, definition),
                    idempotent=False,
                )
            schema = await writer.call(name, read_schema)
        checkpoint.set_collection_id(name, schema.id)
        schemas[name] = schema
    return schemas


class _CheckpointReferences:
    """Source key -> Webflow id, from the checkpoint log.

    References into ``deferred`` collections (a cycle, or the collection itself) are never
    resolved in the first pass, even when the target happens to exist already: the item's hash
    then depends only on its source, and the second pass sets them the same way every run.
    """

    def __init__(self, checkpoint: CheckpointLog, deferred: frozenset[str] = frozenset()) -> None:
        self.checkpoint = checkpoint
        self.deferred = deferred

    def webflow_id(self, collection: str, source_key: str) -> str | None:
        if collection in self.deferred:
            return None
        state = self.checkpoint.lookup(collection, [source_key]).get(source_key)
        if state is None or state.state not in ("done", "staged"):
            return None
        return state.webflow_id


class _CheckpointSlugs:
    """Slug claims kept in the checkpoint log: the same key keeps its slug across runs."""

    def __init__(self, checkpoint: CheckpointLog, collection: str, foreign: set[str]) -> None:
        self.checkpoint = checkpoint
        self.collection = collection
        self.foreign = foreign
        self.known: dict[str, str] = {}
        self.claimed_now: dict[str, str] = {}

    def remember(self, states: Mapping[str, ItemState]) -> None:
        self.known = {key: s.slug for key, s in states.items() if s.slug}

    def claim(self, source_key: str, wanted: str) -> str:
        kept = self.known.get(source_key)
        if kept is not None:
            return kept
        candidate, number = wanted, 1
        while not self._free(candidate, source_key):
            number += 1
            candidate = slug_with_suffix(wanted, number)
        self.claimed_now[candidate] = source_key
        return candidate

    def _free(self, slug: str, key: str) -> bool:
        if slug in self.foreign:
            return False
        holder = self.claimed_now.get(slug)
        if holder is not None and holder != key:
            return False
        stored = self.checkpoint.slug_holder(self.collection, slug)
        return stored is None or stored == key


def _target_of(job: Job, mapped: MappedItem) -> Target:
    if job.run.mode == "draft" or mapped.status == "draft":
        return "draft"
    return "live" if job.run.mode == "live" else "staged"


async def _run_collection(
    job: Job,
    name: str,
    schema: CollectionSchema,
    writer: Writer,
    checkpoint: CheckpointLog,
    summary: RunSummary,
    sink: ProgressSink,
    second_pass: list[_DeferredItem],
) -> None:
    collection = job.collections[name]
    sink.collection_started(name, None)
    await _reconcile_leftovers(name, schema.id, writer, checkpoint, summary)
    foreign = await _foreign_slugs(name, schema.id, writer, checkpoint)
    slugs = _CheckpointSlugs(checkpoint, name, foreign)
    references = collection.references()
    deferred_targets = frozenset(
        references[f] for f in job.write_order().deferred.get(name, frozenset()) if f in references
    )
    mapper = compile_mapping(
        collection.mapping(),
        schema,
        collection=name,
        resolver=_CheckpointReferences(checkpoint, deferred_targets),
        slugs=slugs,
        deferrable=deferred_targets,
    )
    source = collection.source.open(base_dir=job.path.parent, env=_environ())
    batch_size = job.run.batch_size
    send, receive = anyio.create_memory_object_stream[Batch](BATCH_BUFFER)
    before = dict(writer.stats.by_collection.get(name, {}))

    async def produce() -> None:
        seen: set[str] = set()
        lanes: dict[tuple[str, Target], list[PendingItem]] = {}

        async def flush(lane: tuple[str, Target]) -> None:
            items = lanes.pop(lane, [])
            if items:
                operation: Operation = "create" if lane[0] == "create" else "update"
                await send.send(Batch(name, schema.id, operation, lane[1], tuple(items)))

        async def handle_chunk(chunk: list[SourceItem]) -> None:
            keys = [r.key for r in chunk if isinstance(r, SourceRecord)]
            states = checkpoint.lookup(name, keys)
            slugs.remember(states)
            failures: list[ItemFailure] = []
            for record in chunk:
                if isinstance(record, RecordError):
                    failures.append(
                        ItemFailure(
                            key=record.key,
                            field=None,
                            kind="source",
                            reason=_positioned(record.reason, record.position),
                        )
                    )
                    continue
                if record.key in seen:
                    failures.append(
                        ItemFailure(
                            key=record.key,
                            field=None,
                            kind="source",
                            reason=_positioned(
                                "duplicate key in the source; the first record "
                                "with this key was kept",
                                record.position,
                            ),
                        )
                    )
                    continue
                seen.add(record.key)
                result = mapper.map(record)
                if isinstance(result, MappingFailure):
                    failures.append(
                        ItemFailure(
                            key=result.key, field=result.field, kind="mapping", reason=result.reason
                        )
                    )
                    continue
                if isinstance(result, SkippedRecord):
                    summary.count(name, "skipped")
                    continue
                for warning in result.warnings:
                    summary.count(name, f"warning:{warning.kind}")
                target = _target_of(job, result)
                digest = _digest(result, target)
                stored = digest + REFERENCES_PENDING if result.deferred_references else digest
                state = states.get(record.key)
                deferred = (
                    _DeferredItem(name, record.key, target, digest, result.deferred_references)
                    if result.deferred_references
                    else None
                )
                if state is not None and state.webflow_id and state.state in ("done", "staged"):
                    if state.content_hash == digest:
                        summary.count(name, "unchanged")
                        sink.advanced(name, unchanged=1)
                        continue
                    if state.content_hash == stored and deferred is not None:
                        # Written, but the run stopped before its references were set.
                        second_pass.append(deferred)
                        continue
                if deferred is not None:
                    second_pass.append(deferred)
                pending = PendingItem(
                    key=record.key,
                    field_data=result.field_data,
                    slug=str(result.field_data.get("slug", "")),
                    content_hash=stored,
                    target=target,
                    webflow_id=state.webflow_id if state is not None else None,
                )
                lane = ("update" if pending.webflow_id else "create", target)
                lanes.setdefault(lane, []).append(pending)
                if len(lanes[lane]) >= batch_size:
                    await flush(lane)
            if failures:
                checkpoint.record_failures(name, None, failures)
                summary.count(name, "failed", len(failures))
                sink.advanced(name, failed=len(failures))

        async with send, contextlib.aclosing(source.records()) as records:
            chunk: list[SourceItem] = []
            async for record in records:
                chunk.append(record)
                if len(chunk) >= LOOKUP_CHUNK:
                    await handle_chunk(chunk)
                    chunk = []
            if chunk:
                await handle_chunk(chunk)
            for lane in list(lanes):
                await flush(lane)

    async def consume(stream: ObjectReceiveStream[Batch]) -> None:
        async with stream:
            async for batch in stream:
                done, failed = await writer.write(batch)
                sink.advanced(name, done=done, failed=failed)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        for _ in range(job.destination.concurrency):
            group.start_soon(consume, receive.clone())
        receive.close()

    await _publish_staged(name, schema.id, writer, checkpoint)
    after = writer.stats.by_collection.get(name, {})
    for outcome, value in after.items():
        delta = value - before.get(outcome, 0)
        if delta:
            summary.count(name, outcome, delta)
    sink.collection_finished(name, summary.collections.get(name, {}))


async def _reconcile_leftovers(
    name: str, collection_id: str, writer: Writer, checkpoint: CheckpointLog, summary: RunSummary
) -> None:
    """Creates an earlier run sent without hearing back: read them back before sending again."""
    leftovers = list(checkpoint.in_state(name, "sending"))
    if not leftovers:
        return
    pending = [
        PendingItem(
            key=s.key,
            field_data={},
            slug=s.slug or "",
            content_hash=s.content_hash or "",
            target="live",
        )
        for s in leftovers
    ]
    since = min(_parse_time(s.updated_at) for s in leftovers)
    found = await writer.find_existing(name, collection_id, pending, since=since)
    batch_id = checkpoint.open_batch(writer.run_id, name, "reconcile", len(leftovers))
    checkpoint.record_acknowledged(
        name,
        batch_id,
        [
            Acknowledged(
                key=p.key,
                webflow_id=found[p.key].id,
                slug=found[p.key].slug or p.slug,
                content_hash=p.content_hash,
                # Whether it was published is read from Webflow, not assumed.
                state="done" if found[p.key].last_published or found[p.key].is_draft else "staged",
            )
            for p in pending
            if p.key in found
        ],
    )
    checkpoint.forget(name, [p.key for p in pending if p.key not in found])
    checkpoint.close_batch(
        batch_id, "ok", detail=f"{len(found)} found, {len(leftovers) - len(found)} not sent"
    )
    summary.count(name, "reconciled", len(found))


async def _foreign_slugs(
    name: str, collection_id: str, writer: Writer, checkpoint: CheckpointLog
) -> set[str]:
    """Slugs of items in the collection that this job did not write, so ours avoid them."""
    page = await writer.call(
        name, functools.partial(writer.client.list_items, collection_id, limit=1)
    )
    ours = sum(checkpoint.counts().get(name, {}).get(s, 0) for s in ("done", "staged"))
    if page.pagination.total <= ours:
        return set()
    slugs: set[str] = set()
    async for item in writer.iter_items(name, collection_id):
        if item.slug:
            slugs.add(item.slug)
    return slugs - _our_slugs(checkpoint, name)


def _our_slugs(checkpoint: CheckpointLog, name: str) -> set[str]:
    slugs: set[str] = set()
    for state in ("done", "staged"):
        slugs.update(s.slug for s in checkpoint.in_state(name, state) if s.slug)
    return slugs


async def _publish_staged(
    name: str, collection_id: str, writer: Writer, checkpoint: CheckpointLog
) -> None:
    staged = [(s.key, s.webflow_id) for s in checkpoint.in_state(name, "staged") if s.webflow_id]
    if staged:
        await writer.publish(name, collection_id, [(k, i) for k, i in staged if i])


@dataclass(frozen=True, slots=True)
class _DeferredItem:
    collection: str
    key: str
    target: Target
    digest: str
    references: Mapping[str, tuple[str, ...]]


def _digest(result: MappedItem, target: Target) -> str:
    if not result.deferred_references:
        return content_hash(result.field_data, target)
    # Deferred references count by their source keys: the hash depends on the source alone.
    deferred = {field: list(keys) for field, keys in sorted(result.deferred_references.items())}
    return content_hash({**result.field_data, "\u0000deferred": deferred}, target)


async def _set_deferred_references(
    job: Job,
    deferred: Sequence[_DeferredItem],
    schemas: Mapping[str, CollectionSchema],
    writer: Writer,
    checkpoint: CheckpointLog,
    summary: RunSummary,
) -> None:
    """The second pass: set the references of a cycle once every item of it exists."""
    by_lane: dict[tuple[str, Target], list[PendingItem]] = {}
    for item in deferred:
        state = checkpoint.lookup(item.collection, [item.key]).get(item.key)
        if state is None or not state.webflow_id:
            continue  # the item itself failed; its error is already logged
        references = job.collections[item.collection].references()
        schema = schemas[item.collection]
        field_data: dict[str, Any] = {}
        missing: list[str] = []
        for field_slug, keys in item.references.items():
            target = references.get(field_slug, item.collection)
            ids = []
            for key in keys:
                found = checkpoint.lookup(target, [key]).get(key)
                if found is None or not found.webflow_id or found.state == "failed":
                    missing.append(f"{field_slug}: no item for source key {key!r} in {target}")
                else:
                    ids.append(found.webflow_id)
            definition = schema.field(field_slug)
            if definition is not None and definition.type == "Reference":
                if ids:
                    field_data[field_slug] = ids[0]
            else:
                field_data[field_slug] = ids
        if missing:
            checkpoint.record_failures(
                item.collection,
                None,
                [
                    ItemFailure(
                        key=item.key,
                        field=missing[0].split(":", 1)[0],
                        reason="; ".join(missing),
                        kind="reference",
                    )
                ],
            )
            summary.count(item.collection, "failed")
            continue
        by_lane.setdefault((item.collection, item.target), []).append(
            PendingItem(
                key=item.key,
                field_data=field_data,
                slug=state.slug or "",
                content_hash=item.digest,
                target=item.target,
                webflow_id=state.webflow_id,
            )
        )
    for (collection, target), items in by_lane.items():
        for start in range(0, len(items), job.run.batch_size):
            chunk = tuple(items[start : start + job.run.batch_size])
            done, failed = await writer.write(
                Batch(collection, schemas[collection].id, "update", target, chunk)
            )
            summary.count(collection, "references_set", done)
            if failed:
                summary.count(collection, "failed", failed)
        if target == "staged":
            await _publish_staged(collection, schemas[collection].id, writer, checkpoint)


def _positioned(reason: str, position: str | None) -> str:
    return f"{position}: {reason}" if position else reason


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _environ() -> Mapping[str, str]:
    return os.environ
