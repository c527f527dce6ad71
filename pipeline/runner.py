"""The runner: a job's collections in the order their references need, then the second pass.

Each collection's run is a chain of stages (read → map → decide → dispatch → finish) in
:mod:`flowport.pipeline.stages`, joined by small bounded streams in one task group, so a slow
Webflow slows the source down instead of filling memory. Every record ends as created,
updated, unchanged, skipped, or failed with a reason in the checkpoint log.

A run and a plan (``flowport plan``) take the same path; they differ in their executor (the
live one writes, the plan one says what a run would do) and in their state (a plan of a job
that never ran reads an empty log in a throwaway folder and an embedded sandbox that keeps
nothing).
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import SecretStr

from flowport.base.errors import AuthError, ConfigError, FatalError, RetriableError
from flowport.base.models import CollectionSchema
from flowport.connectors.wordpress_api import one_discovery_per_site
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.item_room import ItemRoom, items_held
from flowport.pipeline.jobfile import Job
from flowport.pipeline.links import SiteLinks, collect_links, write_redirects
from flowport.pipeline.logging import NullSink, ProgressSink
from flowport.pipeline.media import (
    CheckpointAssetLedger,
    MediaLimits,
    MediaProbe,
    MediaUploader,
)
from flowport.pipeline.preflight import open_and_check_sources, source_problems
from flowport.pipeline.ratebudget import RequestBudget
from flowport.pipeline.retry import WaitLedger
from flowport.pipeline.sharedbudget import chosen_backend, shared_budget
from flowport.pipeline.stages.assets import AssetCounts
from flowport.pipeline.stages.binding import check_bindings
from flowport.pipeline.stages.claims import LOOKUP_CHUNK
from flowport.pipeline.stages.collection import CollectionRun, MediaMove
from flowport.pipeline.stages.executors import Executor, LiveExecutor, PlanExecutor
from flowport.pipeline.stages.schema import (
    SiteLocales,
    check_mapping,
    check_mappings,
    expected_schema,
    prepare_collections,
)
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.state import open_job_log
from flowport.pipeline.webflow.client import WebflowClient
from flowport.pipeline.webflow.reliable import WebflowApi
from flowport.pipeline.writer import ITEM_LIMIT_FIX, ITEM_LIMIT_RERUN, Writer

__all__ = ["RunSummary", "run_job", "validate_job"]


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
            item_limit=destination.item_limit,
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
    found = open_job_log(job, create=not dry_run)
    if found is None:
        # A plan never creates the job's state: an empty log in a throwaway folder stands in.
        with tempfile.TemporaryDirectory(prefix="flowport-plan-") as scratch:
            log = CheckpointLog.open(Path(scratch) / "checkpoint.sqlite")
            try:
                yield log
            finally:
                log.close()
        return
    log = found
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
    full_read: bool = False,
    rehome: bool = False,
) -> RunSummary:
    """Run (or plan) a job. A caller that must report on a run that raises (an interrupt, a
    fatal error) passes its own ``summary``: it holds the counts so far and the reason.
    ``full_read`` reads incremental collections whole, ignoring their saved cursors.
    ``rehome`` re-homes a checkpoint log whose site or collection changed (see
    :mod:`flowport.pipeline.stages.binding`) instead of stopping."""
    sink: ProgressSink = progress or NullSink()
    summary = summary if summary is not None else RunSummary(job=job.name, dry_run=dry_run)
    started = time.perf_counter()
    if job.destination.api != "sandbox":
        job.token()  # a missing token is a bad job: stop before creating anything
    unprotected = job.token_file_warning()
    if unprotected is not None:
        sink.message("warning", unprotected)
    with _checkpoint_for(job, dry_run=dry_run) as checkpoint:
        checkpoint.start_scratch()
        run_id = 0 if dry_run else checkpoint.begin_run()
        try:
            # The sources of one WordPress site (checked, mapped for links, read) learn it once.
            with one_discovery_per_site():
                await _run(
                    job,
                    checkpoint,
                    run_id,
                    summary,
                    sink,
                    dry_run=dry_run,
                    full_read=full_read,
                    rehome=rehome,
                )
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
            summary.seconds = time.perf_counter() - started
            if not dry_run:
                outcome = (
                    "aborted" if summary.aborted else ("partial" if summary.exit_code else "ok")
                )
                checkpoint.finish_run(run_id, outcome, summary.as_dict())
    return summary


def _budget_for(job: Job, destination: _Destination) -> AbstractAsyncContextManager[RequestBudget]:
    """The token's budget, shared with every other job of this process (or of every process
    naming the same Redis) that uses the token (README, "Shared rate budgets")."""
    return shared_budget(
        backend=chosen_backend(job.run.rate_budget),
        base_url=destination.base_url,
        token=destination.token,
        limit=job.rate_limit(),
        window_seconds=job.destination.rate_window_seconds,
    )


async def _run(
    job: Job,
    checkpoint: CheckpointLog,
    run_id: int,
    summary: RunSummary,
    sink: ProgressSink,
    *,
    dry_run: bool,
    full_read: bool = False,
    rehome: bool = False,
) -> None:
    """The run itself, against the job's destination."""
    async with _destination(job, dry_run=dry_run) as destination, contextlib.AsyncExitStack() as up:
        budget = await up.enter_async_context(_budget_for(job, destination))
        async with WebflowClient(
            destination.base_url,
            destination.token,
            budget=budget,
            timeout_seconds=job.destination.timeout_seconds,
            max_connections=job.destination.concurrency,
        ) as client:
            api = WebflowApi(
                client,
                on_retry=lambda collection, error: _note_retry(sink, summary, collection, error),
                waits=WaitLedger(
                    job.run.max_total_wait_seconds,
                    on_wait=lambda seconds, why: _note_wait(sink, seconds, why, job),
                ),
            )
            sink.count_requests(lambda collection: api.stats.by_collection.get(collection, 0))
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
            try:
                run = _Run(
                    job, writer, summary, sink, dry_run=dry_run, full_read=full_read, rehome=rehome
                )
                await _execute(run, client, checkpoint, destination.site_id)
            except BaseExceptionGroup as group:
                raise _first_fatal(group) from None
            finally:
                # Synchronous: the request counts reach the summary however the run ends.
                summary.requests = api.stats.requests
                summary.retries = api.stats.retries
                summary.rate_limited = api.stats.rate_limited


async def _execute(
    run: _Run, client: WebflowClient, checkpoint: CheckpointLog, site_id: str
) -> None:
    """The run, with the assets stage's uploader open around it when ``[assets]`` is on."""
    async with _media(run.job, client, checkpoint, site_id, dry_run=run.dry_run) as media:
        run.media = media
        try:
            await run.execute(site_id)
        finally:
            # However the run ends, the summary has the files moved so far.
            if media is not None:
                run.summary.assets = media.counts.as_dict()
                if media.uploader is not None and media.uploader.api_calls:
                    run.summary.assets["api_requests"] = media.uploader.api_calls


@contextlib.asynccontextmanager
async def _media(
    job: Job, client: WebflowClient, checkpoint: CheckpointLog, site_id: str, *, dry_run: bool
) -> AsyncIterator[MediaMove | None]:
    """The assets stage's uploader, for the run's length (none in a plan: it only counts)."""
    if not job.assets.enabled:
        yield None
        return
    counts = AssetCounts()
    limits = MediaLimits(
        file_max_bytes=job.assets.max_file_bytes,
        downloads_per_second=job.assets.downloads_per_second,
    )
    if dry_run:
        # A plan asks the old site for each file's size (HEAD), downloads and creates nothing.
        async with MediaProbe(limits) as probe:
            yield MediaMove(None, counts, site_id, probe)
        return
    ledger = CheckpointAssetLedger(checkpoint, site_id)
    async with MediaUploader(client, site_id, ledger=ledger, limits=limits) as uploader:
        yield MediaMove(uploader, counts, site_id)


class _Run:
    """One run (or plan) of a job: the collections in write order, then the second pass."""

    def __init__(
        self,
        job: Job,
        writer: Writer,
        summary: RunSummary,
        sink: ProgressSink,
        *,
        dry_run: bool,
        full_read: bool = False,
        rehome: bool = False,
    ) -> None:
        self.job = job
        self.full_read = full_read
        self.dry_run = dry_run
        self.rehome = rehome
        self.writer = writer
        self.summary = summary
        self.sink = sink
        self.schemas: dict[str, CollectionSchema] = {}
        #: The assets stage's uploader and counts, when ``[assets]`` is enabled.
        self.media: MediaMove | None = None
        # The one choice between a run and a plan: who carries the decisions out.
        self.executor: Executor = (
            PlanExecutor(writer, summary)
            if dry_run
            else LiveExecutor(job, writer, summary, sink, self.schemas)
        )

    async def execute(self, site_id: str) -> None:
        job, writer = self.job, self.writer
        existing = await writer.api.list_collections(site_id)
        if not self.dry_run:
            # Counted only before the run's first create; collections the run makes hold none.
            writer.item_room = ItemRoom(
                job.destination.effective_item_limit,
                functools.partial(items_held, writer.api, [c.id for c in existing]),
                on_passed=self.say_limit_passed,
            )
        await check_mappings(job, writer, site_id, existing)
        # Every source opens and gives its first record before the first write; the opened
        # sources serve the run.
        cursors = {
            name: None if self.full_read else writer.checkpoint.cursor(name)
            for name in job.collections
        }
        sources = await open_and_check_sources(job, cursors)
        links = await self.site_links()
        locales = await SiteLocales.read(job, writer, site_id)
        # The last check before the first write: a log bound to another collection or site
        # would count items as present where they are not. A plan never re-homes.
        check_bindings(
            job,
            writer.checkpoint,
            site_id,
            existing,
            self.sink,
            rehome=self.rehome and not self.dry_run,
        )
        self.schemas.update(
            await prepare_collections(job, writer, self.executor, site_id, existing)
        )
        if not self.dry_run:
            writer.checkpoint.bindings.bind_site(list(job.collections), site_id)
        await self.reconcile_media()
        for name in job.write_order():
            await CollectionRun(
                job,
                name,
                writer=writer,
                executor=self.executor,
                summary=self.summary,
                sink=self.sink,
                schemas=self.schemas,
                locales=locales,
                source=sources.get(name),
                full_read=self.full_read,
                media=self.media,
                link_map=links.link_map if links is not None else None,
            ).run()
        for deferred in writer.checkpoint.deferred_references(LOOKUP_CHUNK):
            await self.executor.set_references(deferred)
        await self.executor.references_done()
        self.say_item_limit()
        if self.dry_run:
            await self.warn_item_limit(site_id, existing)
        self.write_redirects(links)
        if job.run.publish_site and self.summary.exit_code == 0:
            await self.executor.publish_site(site_id)

    async def reconcile_media(self) -> None:
        """A killed run's asset creates, settled before anything is created again."""
        if self.media is None or self.media.uploader is None:
            return
        settled = await self.media.uploader.reconcile()
        if settled.kept or settled.deleted or settled.forgotten:
            self.sink.message(
                "info",
                f"assets left by an interrupted run: {settled.kept} kept (uploaded), "
                f"{settled.deleted} deleted (bytes missing), {settled.forgotten} never created",
            )

    async def site_links(self) -> SiteLinks | None:
        """The old site's pages and their Webflow paths, before the first record is mapped."""
        if self.job.run.old_site is None:
            return None
        links = await collect_links(self.job, self.job.run.old_site, self.writer.checkpoint)
        self.sink.message(
            "info", f"links: {len(links.link_map)} pages of {self.job.run.old_site} mapped to items"
        )
        return links

    def write_redirects(self, links: SiteLinks | None) -> None:
        """Rewritten at the end of every run, so a new post gets its row; a plan writes none."""
        target = self.job.run.redirects_csv
        if links is None or target is None or self.dry_run:
            return
        path = target if target.is_absolute() else self.job.base_dir / target
        rows = write_redirects(path, links, self.writer.checkpoint)
        self.sink.message("info", f"wrote {path}: {rows} redirects")

    async def warn_item_limit(self, site_id: str, existing: list[CollectionSchema]) -> None:
        """A plan's warning when its creates would pass the site's item limit (the job's
        ``item_limit``, or its ``plan``'s): one read per collection of the site, for its count."""
        creates = self.summary.total("would_create")
        if not creates:
            return
        destination = self.job.destination
        limit = destination.effective_item_limit
        held = await items_held(self.writer.api, [c.id for c in existing])
        if held + creates <= limit:
            return
        message = (
            f"the site's CMS item limit ({_declared_limit(self.job)}) would be passed: it holds "
            f"{held} items and this run would create {creates}, so {held + creates - limit} "
            f"would fail; {ITEM_LIMIT_FIX} (or set item_limit if the site allows more)"
        )
        self.summary.notes.append(message)
        self.sink.message("warning", message)

    def say_limit_passed(self, held: int) -> None:
        """The site took creates past the item limit the job declares: it allows more."""
        message = (
            f"the site holds {held} items, more than the CMS item limit the job declares "
            f"({_declared_limit(self.job)}); set item_limit (or plan) to the site's limit: "
            "at the limit the job declares, creating stops with one request refused at most, "
            "at an unknown one with every request in flight refused"
        )
        self.summary.notes.append(message)
        self.sink.message("warning", message)

    def say_item_limit(self) -> None:
        """Once, at the end: the site's item limit stopped creating (its items are failed)."""
        answer = self.writer.item_limit_reached
        if answer is None:
            return
        message = (
            f"{self.writer.stats.over_item_limit} records were not created: the site reached "
            f"its CMS item limit (Webflow: {answer}); {ITEM_LIMIT_FIX}, {ITEM_LIMIT_RERUN}"
        )
        self.summary.notes.append(message)
        self.sink.message("error", message)


def _declared_limit(job: Job) -> str:
    """The item limit the job declares, and where it comes from."""
    destination = job.destination
    limit = destination.effective_item_limit
    if destination.item_limit is not None:
        return f"item_limit = {limit}"
    return f'{limit} for plan = "{destination.plan}"'


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


def _note_retry(
    sink: ProgressSink, summary: RunSummary, collection: str, error: RetriableError
) -> None:
    sink.retried(collection, status=error.status, rate_limited=error.status == 429)
    summary.note_retry(collection, rate_limited=error.status == 429)


def _note_wait(sink: ProgressSink, seconds: float, why: str, job: Job) -> None:
    cap = job.run.max_total_wait_seconds
    sink.message(
        "warning",
        f"waiting {seconds:.0f} s: {why} (the run waits at most "
        f"max_total_wait_seconds = {cap:g} s in all)",
        wait_seconds=round(seconds, 3),
    )


async def validate_job(job: Job) -> list[str]:
    """Check every mapping against the schema it would meet, writing nothing: one line each."""
    problems: list[str] = []
    async with (
        _destination(job, dry_run=True) as destination,
        _budget_for(job, destination) as budget,
        WebflowClient(
            destination.base_url,
            destination.token,
            budget=budget,
            # The job's own timeout: an address that never answers costs it, not a minute.
            timeout_seconds=job.destination.timeout_seconds,
        ) as client,
    ):
        existing = await client.list_collections(destination.site_id)
        for name in job.collections:
            try:
                schema = await expected_schema(
                    job, name, existing, client.get_collection, destination.site_id
                )
                check_mapping(job, name, schema)
            except ConfigError as error:
                problems.append(str(error))
    problems.extend(await source_problems(job))
    return problems
