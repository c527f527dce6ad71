"""The runner: for each collection, source → mapping → batches of ≤ 100 → writer.

Stages are joined by small bounded streams and every task is owned by one task group per
collection, so a slow Webflow slows the source down instead of filling memory. Collections are
written in the order their references need; reference cycles in two passes. Every record ends as
created, updated, unchanged, skipped, or failed with a reason in the checkpoint log.

A record not yet in the checkpoint log whose external key or slug matches an item someone else
put in the collection is adopted: compared by content, then left alone or PATCHed, never
duplicated. On a full read, items whose source record disappeared are kept, archived, unpublished
or deleted as the job says, and never more than ``max_delete_share`` of them in one run.

The same path, with ``dry_run=True``, is ``flowport plan``: it reads and maps everything and says
what a run would do, writing nothing to Webflow or to the checkpoint log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import secrets
import tempfile
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import ObjectReceiveStream
from pydantic import SecretStr

from flowport.base.errors import (
    AuthError,
    ConfigError,
    FatalError,
    FlowportError,
    OutcomeUnknown,
    RequestRejected,
    RetriableError,
    ServerError,
)
from flowport.base.models import CollectionSchema, Item
from flowport.connectors import (
    AttachmentSource,
    BatchedSource,
    CountableSource,
    RecordError,
    Source,
    SourceItem,
    SourceRecord,
)
from flowport.mappings import (
    MappedItem,
    MappingFailure,
    RecordMapper,
    SkippedRecord,
    SlugClaims,
    compile_mapping,
    content_hash,
)
from flowport.mappings.slugs import slug_with_suffix
from flowport.pipeline.checkpoint import Acknowledged, CheckpointLog, ItemFailure, ItemState
from flowport.pipeline.jobfile import CollectionJob, Job
from flowport.pipeline.logging import NullSink, ProgressSink
from flowport.pipeline.preflight import open_and_check_sources, source_problems
from flowport.pipeline.ratebudget import RateBudget
from flowport.pipeline.webflow.client import WebflowClient
from flowport.pipeline.webflow.reliable import WebflowApi
from flowport.pipeline.writer import (
    LOCALES_PENDING,
    Batch,
    BatchOutcome,
    Operation,
    PendingItem,
    Target,
    Writer,
)

__all__ = ["RunSummary", "run_job", "validate_job"]

#: Records looked up in the checkpoint log in one query.
LOOKUP_CHUNK = 500
#: Marks the stored hash of an item whose deferred references are not set yet.
REFERENCES_PENDING = "~references-pending"
#: Stored hashes with work still owed: such items are mapped again, whatever their source.
_PENDING_MARKS = (REFERENCES_PENDING, LOCALES_PENDING)
#: Batches waiting for a worker: small, so memory stays flat and backpressure reaches the source.
BATCH_BUFFER = 2
#: Tries at creating a collection or its fields when answers get lost.
SCHEMA_ATTEMPTS = 8
#: Field-level differences a plan shows per collection.
PLAN_SAMPLES = 3
#: A plan's stand-in id for an item this run would create (ids are 24 hex characters).
PLANNED_ID = "f" * 24

_ItemsRemoved = ("archived", "unpublished")


@dataclass(slots=True)
class RunSummary:
    job: str
    dry_run: bool = False
    collections: dict[str, dict[str, int]] = field(default_factory=dict)
    aborted: str | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    site_published: bool = False
    notes: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def count(self, collection: str, outcome: str, n: int = 1) -> None:
        if n:
            per = self.collections.setdefault(collection, {})
            per[outcome] = per.get(outcome, 0) + n

    def add(self, collection: str, counts: Mapping[str, int]) -> None:
        for outcome, n in counts.items():
            self.count(collection, outcome, n)

    def total(self, outcome: str) -> int:
        return sum(per.get(outcome, 0) for per in self.collections.values())

    @property
    def exit_code(self) -> int:
        if self.aborted is not None:
            return 3
        troubles = ("failed", "publish_failed", "unresolved", "deletions_refused")
        if any(self.total(outcome) for outcome in troubles):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
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
        if self.dry_run:
            result["dry_run"] = True
            result["samples"] = self.samples
        if self.notes:
            result["notes"] = self.notes
        return result


@dataclass(frozen=True, slots=True)
class _Destination:
    base_url: str
    token: SecretStr
    site_id: str


@contextlib.asynccontextmanager
async def _destination(job: Job, *, dry_run: bool = False) -> AsyncIterator[_Destination]:
    destination = job.destination
    if destination.api == "sandbox":
        # The embedded sandbox keeps its state beside the checkpoint log, so a rerun sees what
        # the last run wrote, exactly as a real site would. A plan leaves no state behind.
        from flowport.pipeline.sandbox import Sandbox, SandboxConfig

        token = secrets.token_hex(16)
        state_file: Path | None = job.state_dir / "sandbox-state.jsonl"
        if dry_run and not await anyio.Path(job.state_dir / "sandbox-state.jsonl").exists():
            state_file = None
        else:
            job.state_dir.mkdir(parents=True, exist_ok=True)
        config = SandboxConfig(
            tokens=(token,),
            # The site plan sets the embedded site's CMS item limit, as on Webflow.
            plan=destination.plan,
            rate_limit=job.rate_limit(),
            window_seconds=destination.rate_window_seconds,
            state_file=state_file,
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


@contextlib.contextmanager
def _checkpoint_for(job: Job, *, dry_run: bool) -> Iterator[CheckpointLog]:
    path = job.state_dir / "checkpoint.sqlite"
    if dry_run and not path.exists():
        # A plan never creates the job's state: an empty log in a throwaway folder stands in.
        with tempfile.TemporaryDirectory(prefix="flowport-plan-") as scratch:
            log = CheckpointLog.open(Path(scratch) / "checkpoint.sqlite")
            try:
                yield log
            finally:
                log.close()
        return
    job.state_dir.mkdir(parents=True, exist_ok=True)
    log = CheckpointLog.open(path)
    try:
        yield log
    finally:
        log.close()


async def run_job(
    job: Job,
    progress: ProgressSink | None = None,
    *,
    dry_run: bool = False,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Run (or plan) a job. A caller that must report on a run that raises (an interrupt, a
    fatal error) passes its own ``summary``: it holds the counts so far and the reason."""
    sink: ProgressSink = progress or NullSink()
    summary = summary if summary is not None else RunSummary(job=job.path.stem, dry_run=dry_run)
    started = time.perf_counter()
    if job.destination.api != "sandbox":
        job.token()  # a missing token is a bad job: stop before creating anything
    with _checkpoint_for(job, dry_run=dry_run) as checkpoint:
        checkpoint.start_scratch()
        run_id = 0 if dry_run else checkpoint.begin_run()
        api: WebflowApi | None = None
        try:
            async with _destination(job, dry_run=dry_run) as destination:
                budget = RateBudget(job.rate_limit(), job.destination.rate_window_seconds)
                async with WebflowClient(
                    destination.base_url,
                    destination.token,
                    budget=budget,
                    timeout_seconds=job.destination.timeout_seconds,
                    max_connections=job.destination.concurrency,
                ) as client:
                    api = WebflowApi(
                        client,
                        on_retry=lambda collection, error: _note_retry(sink, collection, error),
                    )
                    writer = Writer(
                        api,
                        checkpoint,
                        run_id,
                        external_key_fields={
                            name: c.external_key_field
                            for name, c in job.collections.items()
                            if c.external_key_field
                        },
                    )
                    run = _Run(job, writer, checkpoint, summary, sink, dry_run=dry_run)
                    try:
                        await run.execute(destination.site_id)
                    except BaseExceptionGroup as group:
                        raise _first_fatal(group) from None
        except ConfigError as error:
            # A bad job found once the target was read: the caller reports it as one (exit 2).
            summary.aborted = str(error)
            raise
        except AuthError as error:
            summary.aborted = f"{error}; {_token_origin(job)}"
            sink.message("error", f"run stopped: {summary.aborted}")
        except FatalError as error:
            summary.aborted = str(error)
            sink.message("error", f"run stopped: {error}")
        except BaseException as error:
            summary.aborted = f"stopped by {type(error).__name__}"
            raise
        finally:
            # Synchronous on purpose: a cancellation cannot interrupt the final flush.
            if api is not None:
                summary.requests = api.stats.requests
                summary.retries = api.stats.retries
                summary.rate_limited = api.stats.rate_limited
            summary.seconds = time.perf_counter() - started
            if not dry_run:
                outcome = (
                    "aborted" if summary.aborted else ("partial" if summary.exit_code else "ok")
                )
                checkpoint.finish_run(run_id, outcome, summary.as_dict())
    return summary


def _first_fatal(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a task group's failure stands for: a fatal one if any task had one."""
    matched, _rest = group.split(FatalError)
    found: BaseException | None = matched
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found if found is not None else group


def _token_origin(job: Job) -> str:
    if job.destination.api == "sandbox":
        return "the embedded sandbox refused its own token"
    if job.destination.token_env:
        where = f"the environment variable {job.destination.token_env} (destination.token_env)"
    else:
        where = f"the file {job.destination.token_file} (destination.token_file)"
    return (
        f"Webflow refused the token from {where}: check that it is the site's API token "
        "and that it has the CMS and Sites read and write scopes"
    )


def _note_retry(sink: ProgressSink, collection: str, error: RetriableError) -> None:
    sink.retried(collection, status=error.status, rate_limited=error.status == 429)


async def validate_job(job: Job) -> list[str]:
    """Check every mapping against the schema it would meet, writing nothing: one line each."""
    problems: list[str] = []
    budget = RateBudget(job.rate_limit(), job.destination.rate_window_seconds)
    async with (
        _destination(job, dry_run=True) as destination,
        WebflowClient(destination.base_url, destination.token, budget=budget) as client,
    ):
        existing = await client.list_collections(destination.site_id)
        for name in job.collections:
            try:
                schema = await _expected_schema(
                    job, name, existing, client.get_collection, destination.site_id
                )
                _check_mapping(job, name, schema)
            except ConfigError as error:
                problems.append(str(error))
    problems.extend(await source_problems(job))
    return problems


async def _expected_schema(
    job: Job,
    name: str,
    existing: Sequence[CollectionSchema],
    read: Callable[[str], Awaitable[CollectionSchema]],
    site_id: str,
) -> CollectionSchema:
    """The schema a collection's items will meet: as it is, plus what the job would create."""
    collection = job.collections[name]
    planned = _planned_schema(name, collection)
    found = _find_collection(existing, collection.target)
    if found is None:
        if not collection.create_missing:
            raise ConfigError(
                f"no collection '{collection.target}' on site {site_id}",
                key=f"collections.{name}.target",
                fix="create it in Webflow, or set create_missing = true with a schema",
            )
        return planned
    current = await read(found.id)
    if not collection.create_missing:
        return current
    have = {f.slug for f in current.fields}
    extra = [f for f in planned.fields if f.slug not in have]
    return current.model_copy(update={"fields": (*current.fields, *extra)})


def _check_mapping(job: Job, name: str, schema: CollectionSchema) -> None:
    compile_mapping(
        job.collections[name].mapping(),
        schema,
        collection=name,
        resolver=_NoReferences(),
        slugs=_NoSlugs(),
        deferrable=frozenset(job.collections),
    )


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


def _planned_schema(name: str, collection: CollectionJob) -> CollectionSchema:
    """What a collection the run would create will look like, for mapping it in a plan."""
    return collection.planned_schema(name)


class _CheckpointReferences:
    """Source key -> Webflow id, from the checkpoint log.

    References into ``deferred`` collections (a cycle, or the collection itself) are never
    resolved in the first pass, even when the target happens to exist already: the item's hash
    then depends only on its source, and the second pass sets them the same way every run.
    In a plan, keys that this run would create resolve to a stand-in id.
    """

    def __init__(
        self,
        checkpoint: CheckpointLog,
        deferred: frozenset[str] = frozenset(),
        *,
        plan: bool = False,
    ) -> None:
        self.checkpoint = checkpoint
        self.deferred = deferred
        self.plan = plan

    def webflow_id(self, collection: str, source_key: str) -> str | None:
        if collection in self.deferred:
            return None
        state = self.checkpoint.lookup(collection, [source_key]).get(source_key)
        if state is not None and state.state in ("done", "staged") and state.webflow_id:
            return state.webflow_id
        if self.plan and self.checkpoint.is_planned(collection, source_key):
            return PLANNED_ID
        return None


class _CheckpointSlugs:
    """Slug claims kept in the checkpoint log: the same key keeps its slug across runs.

    A slug held by an item someone else made is free to claim: the runner adopts that item.

    Claims are settled a chunk at a time: between :meth:`tentative` and :meth:`settle`, a claim
    takes the slug it wants and is noted; ``settle`` then asks the log about all of them in one
    query and returns the keys whose slug turned out to be held, to be mapped again one claim
    at a time (the rare case). Outside that window each claim asks the log itself.
    """

    def __init__(self, checkpoint: CheckpointLog, collection: str) -> None:
        self.checkpoint = checkpoint
        self.collection = collection
        self.known: dict[str, str] = {}
        #: Claims of the chunk being mapped, written to the scratch together by :meth:`flush`.
        self.pending: dict[str, str] = {}
        #: (key, slug) claimed in the tentative window, in claim order.
        self.provisional: list[tuple[str, str]] | None = None

    def remember(self, states: Mapping[str, ItemState]) -> None:
        self.known = {key: s.slug for key, s in states.items() if s.slug}

    def tentative(self) -> None:
        self.provisional = []

    def claim(self, source_key: str, wanted: str) -> str:
        kept = self.known.get(source_key)
        if kept is not None:
            return kept
        if self.provisional is not None:
            self.provisional.append((source_key, wanted))
            return wanted
        candidate, number = wanted, 1
        while not self._free(candidate, source_key):
            number += 1
            candidate = slug_with_suffix(wanted, number)
        self._hold(candidate, source_key)
        return candidate

    def settle(self) -> set[str]:
        """End the tentative window: keep every claim whose slug is free, in claim order, and
        return the keys whose slug is held by another key (in the log, in this run, or by an
        earlier claim of the same chunk)."""
        claims, self.provisional = self.provisional or [], None
        if not claims:
            return set()
        self.flush()  # claims made one at a time must be seen by this one
        accepted = self.checkpoint.claim_free_slugs(self.collection, claims)
        return {key for key, _ in claims if key not in accepted}

    def _hold(self, slug: str, key: str) -> None:
        self.pending[slug] = key
        if len(self.pending) >= LOOKUP_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.checkpoint.claim_slugs(
                self.collection, [(key, slug) for slug, key in self.pending.items()]
            )
            self.pending = {}

    def _free(self, slug: str, key: str) -> bool:
        # Claimed in this run by another record, or held by an item of an earlier run.
        pending = self.pending.get(slug)
        if pending is not None:
            return pending == key
        return all(
            holder is None or holder == key
            for holder in self.checkpoint.slug_holders(self.collection, slug)
        )


@dataclass(slots=True)
class _Foreign:
    """Items in the collection that this job's log does not know, by slug and external key."""

    by_slug: dict[str, Item] = field(default_factory=dict)
    by_key: dict[str, Item] = field(default_factory=dict)

    def adopt(self, key: str, slug: str) -> Item | None:
        item = self.by_key.get(key) or self.by_slug.get(slug)
        if item is not None:
            # One item, one record: it cannot be adopted twice.
            self.by_slug.pop(item.slug or "", None)
            for other_key, other in list(self.by_key.items()):
                if other.id == item.id:
                    del self.by_key[other_key]
        return item


def _same_content(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether an item already holds every value we would send (Webflow adds file ids)."""
    return all(_comparable(value) == _comparable(theirs.get(slug)) for slug, value in ours.items())


def _comparable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _comparable(v) for k, v in value.items() if k != "fileId"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _target_of(job: Job, mapped: MappedItem) -> Target:
    if job.run.mode == "draft" or mapped.status == "draft":
        return "draft"
    return "live" if job.run.mode == "live" else "staged"


def _later_cursor(current: str | None, candidate: str | None) -> str | None:
    """The later of two cursor values: as dates, as numbers, or as text, whichever they are."""
    if candidate is None:
        return current
    if current is None:
        return candidate
    for parse in (_as_time, _as_number):
        left, right = parse(current), parse(candidate)
        if left is not None and right is not None:
            return candidate if right > left else current
    return max(current, candidate)


def _as_time(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class _DeferredItem:
    collection: str
    key: str
    target: Target
    digest: str
    references: Mapping[str, tuple[str, ...]]
    source_hash: str | None = None


def _digest(
    result: MappedItem, target: Target, locales: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    if not result.deferred_references and not locales:
        return content_hash(result.field_data, target)
    data: dict[str, Any] = dict(result.field_data)
    if result.deferred_references:
        # Deferred references count by their source keys: the hash depends on the source alone.
        data["\u0000deferred"] = {
            f: list(keys) for f, keys in sorted(result.deferred_references.items())
        }
    if locales:
        data["\u0000locales"] = {k: dict(v) for k, v in sorted(locales.items())}
    return content_hash(data, target)


class _PrimarySlugs:
    """Locale variants take the slug their primary item got in this run."""

    def __init__(self, primary: Mapping[str, str]) -> None:
        self.primary = primary

    def claim(self, source_key: str, wanted: str) -> str:
        return self.primary.get(source_key, wanted)


def _mapping_fingerprint(job: Job, collection: CollectionJob) -> bytes:
    """What besides the record decides an item's content: the mapping and the run's mode."""
    spec = collection.model_dump_json(exclude={"source", "deletions", "max_delete_share"})
    return hashlib.blake2b(f"{job.run.mode}\n{spec}".encode(), digest_size=16).digest()


class _SourceHasher:
    """The fingerprint of a record as read: its fields, under the mapping's fingerprint."""

    # orjson and a pre-seeded hasher: this runs for every record of every rerun.
    _OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

    def __init__(self, fingerprint: bytes) -> None:
        self._seeded = hashlib.blake2b(fingerprint, digest_size=16)

    def __call__(self, record: SourceRecord) -> str:
        fields = record.fields
        if type(fields) is not dict:
            fields = dict(fields)
        hasher = self._seeded.copy()
        hasher.update(orjson.dumps(fields, option=self._OPTIONS, default=str))
        return hasher.hexdigest()


async def _read_batches(
    source: Source, since: str | None
) -> AsyncGenerator[Sequence[SourceItem], None]:
    """The source's records a batch at a time: its own batches when it has them, else groups
    of up to LOOKUP_CHUNK records."""
    if isinstance(source, BatchedSource):
        async with contextlib.aclosing(source.record_batches(since=since)) as batches:
            async for batch in batches:
                yield batch
        return
    async with contextlib.aclosing(source.records(since=since)) as records:
        group: list[SourceItem] = []
        async for record in records:
            group.append(record)
            if len(group) >= LOOKUP_CHUNK:
                yield group
                group = []
        if group:
            yield group


def _mapping_failure(failure: MappingFailure) -> ItemFailure:
    return ItemFailure(key=failure.key, field=failure.field, kind="mapping", reason=failure.reason)


def _positioned(reason: str, position: str | None) -> str:
    return f"{position}: {reason}" if position else reason


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Run:
    """One run (or plan) of a job: the collections in write order, then the second pass."""

    def __init__(
        self,
        job: Job,
        writer: Writer,
        checkpoint: CheckpointLog,
        summary: RunSummary,
        sink: ProgressSink,
        *,
        dry_run: bool,
    ) -> None:
        self.job = job
        self.writer = writer
        self.api = writer.api
        self.checkpoint = checkpoint
        self.summary = summary
        self.sink = sink
        self.dry_run = dry_run
        self.schemas: dict[str, CollectionSchema] = {}
        self.second_pass: list[_DeferredItem] = []
        #: The site's locales: tag (lowercase) -> cmsLocaleId; the primary's under "".
        self.locales: dict[str, str] = {}
        #: Each collection's source, opened and checked before the first write.
        self.sources: dict[str, Source] = {}

    async def execute(self, site_id: str) -> None:
        existing = await self.api.list_collections(site_id)
        await self.check_mappings(site_id, existing)
        await self.check_sources()
        await self.prepare_collections(site_id, existing)
        for name in self.job.write_order():
            await self.run_collection(name)
        await self.set_deferred_references()
        if self.job.run.publish_site and self.summary.exit_code == 0 and not self.dry_run:
            await self.api.publish_site(site_id)
            self.summary.site_published = True

    # -- collections and their schemas -----------------------------------------------------------

    async def check_mappings(self, site_id: str, existing: Sequence[CollectionSchema]) -> None:
        """Compile every mapping against the schema it will meet, before anything is written.

        A missing collection the job may not create stops the run here.
        """
        for name in self.job.collections:

            async def read(collection_id: str, name: str = name) -> CollectionSchema:
                return await self.api.get_collection(collection_id, collection=name)

            schema = await _expected_schema(self.job, name, existing, read, site_id)
            _check_mapping(self.job, name, schema)

    async def check_sources(self) -> None:
        """Every source opens and gives its first record before the first write; the opened
        sources serve the run."""
        cursors = {name: self.checkpoint.cursor(name) for name in self.job.collections}
        self.sources = await open_and_check_sources(self.job, cursors)

    async def prepare_collections(self, site_id: str, existing: Sequence[CollectionSchema]) -> None:
        """Find (or, when asked, create) each target collection and its fields; read its schema."""
        api, job = self.api, self.job
        if any(c.locales for c in job.collections.values()):
            site = await api.get_site(site_id)
            if site.locales.primary is not None:
                self.locales[""] = site.locales.primary.cms_locale_id
            for locale in (site.locales.primary, *site.locales.secondary):
                if locale is not None:
                    self.locales[locale.tag.lower()] = locale.cms_locale_id
            for name, collection in job.collections.items():
                self.locale_ids(name, collection)  # a wrong tag stops the run before any write
        ids: dict[str, str] = {}
        for name in job.write_order():
            collection = job.collections[name]
            found = _find_collection(existing, collection.target)
            if found is None:  # check_mappings made sure the job may create it
                if self.dry_run:
                    self.summary.notes.append(f"would create collection {collection.target}")
                    self.schemas[name] = _planned_schema(name, collection)
                    continue
                self.sink.message("info", f"creating collection {collection.target}")
                found = await self.create_collection(site_id, name, collection)
            ids[name] = found.id
        for name in job.write_order():
            if name not in ids:
                continue
            collection = job.collections[name]
            schema = await api.get_collection(ids[name], collection=name)
            if collection.create_missing and self.dry_run:
                for definition in collection.missing_fields(schema, ids):
                    label = definition.get("displayName")
                    self.summary.notes.append(f"would create field {label} in {name}")
            elif collection.create_missing:
                schema = await self.create_missing_fields(name, collection, schema, ids)
            if not self.dry_run:
                self.checkpoint.set_collection_id(name, schema.id)
            self.schemas[name] = schema

    async def create_collection(
        self, site_id: str, name: str, collection: CollectionJob
    ) -> CollectionSchema:
        """Create a collection; after an answer that never came, look before creating again."""
        create = functools.partial(
            self.api.create_collection,
            site_id,
            display_name=collection.target,
            singular_name=collection.schema_singular_name(),
            slug=collection.target_slug(),
            collection=name,
        )
        for _attempt in range(SCHEMA_ATTEMPTS):
            try:
                created = await create()
            except (ServerError, OutcomeUnknown) as error:
                self.sink.message("warning", f"creating collection {collection.target}: {error}")
                existing = await self.api.list_collections(site_id, collection=name)
                found = _find_collection(existing, collection.target)
                if found is not None:
                    return found
                continue
            return created
        raise FatalError(
            f"could not create collection {collection.target} after {SCHEMA_ATTEMPTS} attempts"
        )

    async def create_missing_fields(
        self,
        name: str,
        collection: CollectionJob,
        schema: CollectionSchema,
        ids: Mapping[str, str],
    ) -> CollectionSchema:
        """Create the fields the collection lacks; after a lost answer, re-read and go on."""
        read_schema = functools.partial(self.api.get_collection, schema.id, collection=name)
        for _attempt in range(SCHEMA_ATTEMPTS):
            missing = collection.missing_fields(schema, ids)
            if not missing:
                return schema
            try:
                for definition in missing:
                    label = definition.get("displayName")
                    self.sink.message("info", f"creating field {label} in {name}")
                    await self.api.create_field(schema.id, definition, collection=name)
            except (ServerError, OutcomeUnknown) as error:
                self.sink.message("warning", f"creating fields in {name}: {error}")
            schema = await read_schema()
        if collection.missing_fields(schema, ids):
            raise FatalError(f"could not create the fields of {name} after {SCHEMA_ATTEMPTS} tries")
        return schema

    # -- one collection --------------------------------------------------------------------------

    async def run_collection(self, name: str) -> None:
        job, checkpoint, summary, sink = self.job, self.checkpoint, self.summary, self.sink
        collection = job.collections[name]
        schema = self.schemas[name]
        exists = not schema.id.startswith("planned-")
        if exists and not self.dry_run:
            await self.reconcile_leftovers(name, schema.id)
        foreign = await self.foreign_items(name, schema.id) if exists else _Foreign()
        # A first run: every record read is new, which spares the log that question.
        all_new = not checkpoint.has_items(name)
        slugs = _CheckpointSlugs(checkpoint, name)
        references = collection.references()
        deferred_targets = frozenset(
            references[f]
            for f in job.write_order().deferred.get(name, frozenset())
            if f in references
        )
        source = self.sources.get(name) or collection.source.open(
            base_dir=job.path.parent, env=os.environ
        )
        mapper = compile_mapping(
            collection.mapping(),
            schema,
            collection=name,
            resolver=_CheckpointReferences(checkpoint, deferred_targets, plan=self.dry_run),
            slugs=slugs,
            deferrable=deferred_targets,
            attachment_url=(
                source.attachment_url if isinstance(source, AttachmentSource) else None
            ),
        )
        locale_ids, locale_mappers, primary_slugs = self.locale_mappers(
            name,
            collection,
            schema,
            mapper_options={
                "resolver": _CheckpointReferences(checkpoint, deferred_targets, plan=self.dry_run),
                "deferrable": deferred_targets,
                "attachment_url": (
                    source.attachment_url if isinstance(source, AttachmentSource) else None
                ),
            },
        )
        source_hash_of = _SourceHasher(_mapping_fingerprint(job, collection))
        since = checkpoint.cursor(name) if collection.incremental else None
        sink.collection_started(name, await self.estimated_total(name, source, since))
        # Each locale of an item counts toward the 100 items a request may hold.
        batch_size = max(1, job.run.batch_size // max(len(locale_ids), 1))
        send, receive = anyio.create_memory_object_stream[Batch](BATCH_BUFFER)
        unreadable = 0
        cursor: str | None = since

        async def produce() -> None:
            nonlocal unreadable, cursor
            lanes: dict[tuple[Operation, Target], list[PendingItem]] = {}

            async def flush(lane: tuple[Operation, Target]) -> None:
                items = lanes.pop(lane, [])
                if items:
                    await send.send(
                        Batch(name, schema.id, lane[0], lane[1], tuple(items), locale_ids)
                    )

            async def handle_chunk(chunk: list[SourceItem]) -> None:
                nonlocal unreadable, cursor
                failures: list[ItemFailure] = []
                records: list[tuple[SourceRecord, str]] = []
                for read in chunk:
                    if isinstance(read, RecordError):
                        unreadable += 1
                        failures.append(
                            ItemFailure(
                                key=read.key,
                                field=None,
                                kind="source",
                                reason=_positioned(read.reason, read.position),
                            )
                        )
                        continue
                    records.append((read, source_hash_of(read)))
                # Keys of earlier chunks live in the checkpoint's scratch, not in memory.
                check = checkpoint.check_chunk(
                    name,
                    [(r.key, h) for r, h in records],
                    pending_marks=_PENDING_MARKS,
                    all_new=all_new,
                )
                in_chunk: set[str] = set()
                planned: list[str] = []
                adopted: list[Acknowledged] = []
                to_map: list[tuple[SourceRecord, str]] = []
                unchanged = 0
                for record, source_hash in records:
                    if record.key in check.repeated or record.key in in_chunk:
                        # Logged under a key of its own: the first record's row is not touched.
                        failures.append(
                            ItemFailure(
                                key=f"{record.key}~{record.position or 'repeated'}",
                                field=None,
                                kind="source",
                                reason=_positioned(
                                    f"duplicate key {record.key!r} in the source; the first "
                                    "record with this key was kept",
                                    record.position,
                                ),
                            )
                        )
                        continue
                    in_chunk.add(record.key)
                    cursor = _later_cursor(cursor, record.cursor)
                    if record.key not in check.changed:
                        # The very record this item was written from: nothing to map or send.
                        planned.append(record.key)
                        unchanged += 1
                        continue
                    to_map.append((record, source_hash))
                if unchanged:
                    summary.count(name, "unchanged", unchanged)
                    sink.advanced(name, unchanged=unchanged)
                states = checkpoint.lookup(
                    name, [record.key for record, _ in to_map if check.changed[record.key]]
                )
                slugs.remember(states)
                # Slugs are settled for the whole chunk in one query; a record whose slug turns
                # out to be held is mapped again, claiming one slug at a time.
                slugs.tentative()
                results = [(record, h, mapper.map(record)) for record, h in to_map]
                refused = slugs.settle()
                if refused:
                    results = [
                        (record, h, mapper.map(record) if record.key in refused else result)
                        for record, h, result in results
                    ]
                for record, source_hash, result in results:
                    if isinstance(result, MappingFailure):
                        failures.append(_mapping_failure(result))
                        continue
                    if isinstance(result, SkippedRecord):
                        summary.count(name, "skipped")
                        continue
                    planned.append(record.key)
                    for warning in result.warnings:
                        summary.count(name, f"warning:{warning.kind}")
                    target = _target_of(job, result)
                    locale_values: dict[str, Mapping[str, Any]] = {}
                    if locale_mappers:
                        # Localized items are created staged in every locale, then published.
                        target = "draft" if target == "draft" else "staged"
                        primary_slugs[record.key] = str(result.field_data.get("slug", ""))
                        problem: MappingFailure | None = None
                        for locale_id, tag, locale_mapper in locale_mappers:
                            variant = locale_mapper.map(record)
                            if isinstance(variant, MappingFailure):
                                problem = MappingFailure(
                                    variant.key, variant.field, f"locale {tag}: {variant.reason}"
                                )
                                break
                            if isinstance(variant, MappedItem):
                                locale_values[locale_id] = variant.field_data
                        if problem is not None:
                            failures.append(_mapping_failure(problem))
                            continue
                    digest = _digest(result, target, locale_values)
                    stored = digest + REFERENCES_PENDING if result.deferred_references else digest
                    deferred = (
                        _DeferredItem(
                            name,
                            record.key,
                            target,
                            digest,
                            result.deferred_references,
                            source_hash,
                        )
                        if result.deferred_references
                        else None
                    )
                    slug = str(result.field_data.get("slug", ""))
                    state = states.get(record.key)
                    webflow_id = state.webflow_id if state is not None else None
                    if state is not None and webflow_id and state.state in ("done", "staged"):
                        if state.content_hash == digest:
                            summary.count(name, "unchanged")
                            sink.advanced(name, unchanged=1)
                            continue
                        if state.content_hash == stored and deferred is not None:
                            # Written, but the run stopped before its references were set.
                            self.second_pass.append(deferred)
                            continue
                    if state is not None and state.state in _ItemsRemoved:
                        # Back in the source: bring it back through staging and publishing.
                        target = "draft" if target == "draft" else "staged"
                    if not webflow_id:
                        item = foreign.adopt(record.key, slug)
                        if item is not None:
                            webflow_id = item.id
                            summary.count(name, "adopted")
                            if _same_content(result.field_data, item.field_data) and not deferred:
                                published = bool(item.last_published) or target == "draft"
                                adopted.append(
                                    Acknowledged(
                                        key=record.key,
                                        webflow_id=item.id,
                                        slug=item.slug or slug,
                                        content_hash=stored,
                                        state="done" if published else "staged",
                                        source_hash=source_hash,
                                    )
                                )
                                summary.count(name, "unchanged")
                                sink.advanced(name, unchanged=1)
                                continue
                    if deferred is not None:
                        self.second_pass.append(deferred)
                    pending = PendingItem(
                        key=record.key,
                        field_data=result.field_data,
                        slug=slug,
                        content_hash=stored,
                        target=target,
                        webflow_id=webflow_id,
                        locales=locale_values,
                        source_hash=source_hash,
                    )
                    lane: tuple[Operation, Target] = (
                        "update" if webflow_id else "create",
                        target,
                    )
                    lanes.setdefault(lane, []).append(pending)
                    if len(lanes[lane]) >= batch_size:
                        await flush(lane)
                if failures:
                    summary.count(name, "failed", len(failures))
                    sink.advanced(name, failed=len(failures))
                    if self.dry_run:
                        self.summary.notes.extend(
                            f"{name} {f.key}: {f.reason}" for f in failures[:PLAN_SAMPLES]
                        )
                    else:
                        checkpoint.record_failures(name, None, failures)
                if adopted and not self.dry_run:
                    with checkpoint.batch(
                        self.writer.run_id, name, "adopt", len(adopted)
                    ) as adoption:
                        adoption.acknowledge(adopted)
                slugs.flush()
                if self.dry_run and planned:
                    checkpoint.mark_planned(name, planned)

            async with send, contextlib.aclosing(_read_batches(source, since)) as batches:
                chunk: list[SourceItem] = []
                async for batch in batches:
                    chunk.extend(batch)
                    while len(chunk) >= LOOKUP_CHUNK:
                        await handle_chunk(chunk[:LOOKUP_CHUNK])
                        del chunk[:LOOKUP_CHUNK]
                if chunk:
                    await handle_chunk(chunk)
                for lane in list(lanes):
                    await flush(lane)

        async def consume(stream: ObjectReceiveStream[Batch]) -> None:
            async with stream:
                async for batch in stream:
                    if self.dry_run:
                        await self.plan_batch(batch)
                        continue
                    written = await self.writer.write(batch)
                    summary.add(name, written.counts())
                    sink.advanced(name, done=written.done, failed=written.not_done)

        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            for _ in range(job.destination.concurrency):
                group.start_soon(consume, receive.clone())
            receive.close()

        if since is None:
            await self.remove_vanished(name, schema.id, unreadable)
        if not self.dry_run:
            published = await self.publish_staged(name, schema.id, locale_ids)
            summary.add(name, published.counts())
            per = summary.collections.get(name, {})
            if collection.incremental and cursor is not None and not per.get("failed"):
                checkpoint.set_cursor(name, cursor)
        sink.collection_finished(name, summary.collections.get(name, {}))

    async def estimated_total(self, name: str, source: Source, since: str | None) -> int | None:
        """For the progress display: the source's own count, or what the last run saw."""
        if isinstance(source, CountableSource):
            try:
                total = await source.estimated_total(since)
            except FlowportError:
                total = None  # reading the source says what is wrong with it
            if total is not None:
                return total
        if since is not None:
            return None
        known = sum(self.checkpoint.counts().get(name, {}).values())
        return known or None

    async def plan_batch(self, batch: Batch) -> None:
        outcome = "would_create" if batch.operation == "create" else "would_update"
        self.summary.count(batch.collection, outcome, len(batch.items))
        if batch.operation != "update":
            return
        shown = sum(1 for s in self.summary.samples if s["collection"] == batch.collection)
        for pending in batch.items[: max(0, PLAN_SAMPLES - shown)]:
            if pending.webflow_id is None:
                continue
            current = await self.api.get_item(
                batch.collection_id, pending.webflow_id, collection=batch.collection
            )
            changes = {
                slug: {"from": current.field_data.get(slug), "to": value}
                for slug, value in pending.field_data.items()
                if _comparable(value) != _comparable(current.field_data.get(slug))
            }
            self.summary.samples.append(
                {"collection": batch.collection, "key": pending.key, "changes": changes}
            )

    async def reconcile_leftovers(self, name: str, collection_id: str) -> None:
        """Creates an earlier run sent without hearing back: read them back before resending."""
        checkpoint = self.checkpoint
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
        found = await self.writer.find_existing(name, collection_id, pending, since=since)
        acks = [
            Acknowledged(
                key=p.key,
                webflow_id=found[p.key].id,
                slug=found[p.key].slug or p.slug,
                content_hash=p.content_hash,
                # Whether it was published is read from Webflow, not assumed.
                state=(
                    "done" if found[p.key].last_published or found[p.key].is_draft else "staged"
                ),
            )
            for p in pending
            if p.key in found
        ]
        with checkpoint.batch(self.writer.run_id, name, "reconcile", len(leftovers)) as record:
            record.acknowledge(acks)
            # What was not found was never created: its intent goes, and its record is new again.
            record.settle_intents(sorted({s.batch_id for s in leftovers if s.batch_id}))
            record.detail = f"{len(found)} found, {len(leftovers) - len(found)} not sent"
        self.summary.count(name, "reconciled", len(found))

    async def foreign_items(self, name: str, collection_id: str) -> _Foreign:
        """Items in the collection this job did not write, to adopt instead of duplicating."""
        page = await self.api.list_items(collection_id, limit=1, collection=name)
        ours = self.checkpoint.count_in_webflow(name)
        foreign = _Foreign()
        if page.pagination.total <= ours:
            return foreign
        key_field = self.job.collections[name].external_key_field
        async for item in self.api.iter_items(collection_id, collection=name):
            if self.checkpoint.by_webflow_ids(name, [item.id]):
                continue
            if item.slug:
                foreign.by_slug[item.slug] = item
            if key_field is not None and item.field_data.get(key_field) is not None:
                foreign.by_key[str(item.field_data[key_field])] = item
        return foreign

    async def _archive(
        self, name: str, collection_id: str, ids: list[str], *, unpublish: bool
    ) -> None:
        await self.api.update_items(
            collection_id, [{"id": i, "isArchived": True} for i in ids], live=False, collection=name
        )
        if unpublish:
            # Webflow takes an archived item off the live site only at the next site publish;
            # a live run publishes no site, so it unpublishes what it archives.
            await self.api.delete_items(collection_id, ids, live=True, collection=name)

    async def remove_vanished(self, name: str, collection_id: str, unreadable: int) -> None:
        """Items whose source record is gone, handled as the job says, within the safety cap."""
        collection = self.job.collections[name]
        policy = collection.deletions
        if policy == "keep":
            return
        counts = self.checkpoint.counts().get(name, {})
        known = counts.get("done", 0) + counts.get("staged", 0)
        vanished = self.checkpoint.count_unseen(name)
        if not vanished:
            return
        if unreadable:
            self.summary.notes.append(
                f"{name}: {unreadable} source records could not be read, so {vanished} "
                "missing records were not treated as deleted"
            )
            return
        limit = math.floor(collection.max_delete_share * known)
        if vanished > limit:
            self.summary.count(name, "deletions_refused", vanished)
            message = (
                f"{name}: {vanished} of {known} items are gone from the source, more than "
                f"max_delete_share = {collection.max_delete_share} allows ({limit}); nothing was "
                "removed. If the source is right, raise max_delete_share for one run."
            )
            self.summary.notes.append(message)
            self.sink.message("error", message)
            return
        gone = self.checkpoint.unseen(name)
        outcome = {"archive": "archived", "unpublish": "unpublished", "delete": "deleted"}[policy]
        if self.dry_run:
            self.summary.count(name, f"would_{policy}", len(gone))
            return
        for start in range(0, len(gone), 100):
            chunk = gone[start : start + 100]
            ids = [s.webflow_id or "" for s in chunk]
            operation: Callable[[], Awaitable[Any]]
            if policy == "archive":
                operation = functools.partial(
                    self._archive,
                    name,
                    collection_id,
                    ids,
                    unpublish=self.job.run.mode == "live",
                )
            else:
                operation = functools.partial(
                    self.api.delete_items,
                    collection_id,
                    ids,
                    live=policy == "unpublish",
                    collection=name,
                )
            with self.checkpoint.batch(self.writer.run_id, name, policy, len(chunk)) as record:
                try:
                    await operation()
                except RequestRejected as error:
                    if error.code != "item_not_found":
                        record.rejected(str(error))
                        self.summary.notes.append(f"{name}: could not {policy} items: {error}")
                        continue
                keys = [s.key for s in chunk]
                if policy == "delete":
                    record.forget(keys)
                else:
                    record.mark_removed(keys, "archived" if policy == "archive" else "unpublished")
            self.summary.count(name, outcome, len(chunk))

    async def publish_staged(
        self, name: str, collection_id: str, locale_ids: Sequence[str] = ()
    ) -> BatchOutcome:
        staged = [
            (s.key, s.webflow_id) for s in self.checkpoint.in_state(name, "staged") if s.webflow_id
        ]
        return await self.writer.publish(
            name, collection_id, [(k, i) for k, i in staged if i], locale_ids=locale_ids
        )

    def locale_mappers(
        self,
        name: str,
        collection: CollectionJob,
        schema: CollectionSchema,
        *,
        mapper_options: Mapping[str, Any],
    ) -> tuple[tuple[str, ...], list[tuple[str, str, RecordMapper]], dict[str, str]]:
        """A mapper per secondary locale: the primary's fields, overridden where the job says.

        Locale variants keep the primary's slug unless the job maps ``slug`` for the locale.
        """
        primary_slugs: dict[str, str] = {}
        if not collection.locales:
            return (), [], primary_slugs
        ids = self.locale_ids(name, collection)
        mappers: list[tuple[str, str, RecordMapper]] = []
        base = collection.mapping()
        for (tag, overrides), locale_id in zip(collection.locales.items(), ids[1:], strict=True):
            slugs: SlugClaims = (
                _CheckpointSlugs(self.checkpoint, name)
                if "slug" in overrides
                else _PrimarySlugs(primary_slugs)
            )
            mapper = compile_mapping(
                base.model_copy(update={"fields": {**base.fields, **overrides}}),
                schema,
                collection=name,
                slugs=slugs,
                **mapper_options,
            )
            mappers.append((locale_id, tag, mapper))
        return ids, mappers, primary_slugs

    def locale_ids(self, name: str, collection: CollectionJob) -> tuple[str, ...]:
        """The primary cmsLocaleId, then one per locale the job writes, in its order."""
        if not collection.locales:
            return ()
        primary = self.locales.get("")
        if primary is None:
            raise ConfigError(
                "the site lists no locales",
                key=f"collections.{name}.locales",
                fix="enable localization on the site, or remove the locales table",
            )
        ids = [primary]
        for tag in collection.locales:
            locale_id = self.locales.get(tag.lower())
            if locale_id is None or locale_id == primary:
                known = sorted(t for t, i in self.locales.items() if t and i != primary)
                raise ConfigError(
                    f"'{tag}' is not a secondary locale of the site",
                    key=f"collections.{name}.locales.{tag}",
                    fix=f"use one of: {', '.join(known) or '(the site has no secondary locale)'}",
                )
            ids.append(locale_id)
        return tuple(ids)

    # -- the second pass -------------------------------------------------------------------------

    async def set_deferred_references(self) -> None:
        """Set the references of a cycle once every item of it exists."""
        job, checkpoint, summary = self.job, self.checkpoint, self.summary
        by_lane: dict[tuple[str, Target], list[PendingItem]] = {}
        for item in self.second_pass:
            if self.dry_run:
                summary.count(item.collection, "would_set_references")
                continue
            state = checkpoint.lookup(item.collection, [item.key]).get(item.key)
            if state is None or not state.webflow_id:
                continue  # the item itself failed; its error is already logged
            references = job.collections[item.collection].references()
            schema = self.schemas[item.collection]
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
                    source_hash=item.source_hash,
                )
            )
        for (collection, target), items in by_lane.items():
            collection_id = self.schemas[collection].id
            for start in range(0, len(items), job.run.batch_size):
                chunk = tuple(items[start : start + job.run.batch_size])
                written = await self.writer.write(
                    Batch(collection, collection_id, "update", target, chunk)
                )
                summary.count(collection, "references_set", written.done)
                summary.count(collection, "failed", written.not_done)
            if target == "staged":
                await self.publish_staged(collection, collection_id)
