"""The writer: sends batches of at most 100 items and records every per-item outcome.

Order of events for a create, which is what makes a crash at any instant cost nothing:
1. the intent (each item's key, slug, content hash: one row for the batch) is committed to the
   checkpoint log, which makes the items ``sending``;
2. the request is sent;
3. only once Webflow acknowledged it are the items committed as ``done`` (or ``staged``).
An answer that never comes (a dropped connection, a timeout, a 5xx that may have landed) is
reconciled by reading the collection back, newest first, before anything is sent again; a rerun
after a crash does the same for every item it finds still ``sending``. The intent is settled
(removed) once every item in it is acknowledged, refused, or read back as missing.

A batch that Webflow rejects (400) is split to isolate the bad items, which are recorded with
Webflow's reason; the good ones go through. A refusal because the site reached its plan's CMS
item limit is not split (every half would be refused too): creating stops in the site at once,
and that batch's items and every later create are failed items naming the limit; updates and
publishes go on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flowport.base.errors import (
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    RetriableError,
    ServerError,
)
from flowport.base.models import Item, PublishResult
from flowport.pipeline import crashpoints
from flowport.pipeline.checkpoint import Acknowledged, BatchRecord, CheckpointLog, ItemFailure
from flowport.pipeline.file_values import dropped_files, fetches_files
from flowport.pipeline.item_room import ItemRoom
from flowport.pipeline.server_clock import ServerClock
from flowport.pipeline.webflow.client import last_request_sent
from flowport.pipeline.webflow.reliable import WebflowApi

__all__ = ["Batch", "BatchOutcome", "Operation", "PendingItem", "Target", "Writer", "WriterStats"]

Target = Literal["live", "staged", "draft"]
Operation = Literal["create", "update"]

#: How far around a lost request's send time a read-back looks when Webflow's clock is not known
#: yet (no create acknowledged in the run), for clock skew with the server; and how far before
#: its oldest intent a rerun reads back what a killed run sent.
RECONCILE_SKEW = timedelta(minutes=5)
#: Creates of a batch whose outcome stays unknown are re-sent at most this many times.
MAX_UNKNOWN_ROUNDS = 6

_INDEX_IN_PARAM = re.compile(r"items\[(\d+)\]")
#: How the answer at the site's item limit is recognised. Webflow does not document it (its
#: OpenAPI spec has no such code, the error-handling page lists none), so any refusal whose code,
#: message or details speak of an item or plan limit is taken for it: the sandbox's is a 400
#: "Item limit reached: the site's cms plan allows 2000 CMS items ...".
_ITEM_LIMIT_ANSWER = re.compile(
    r"\bitems?[\s_-]+limit|\bplan[\s_-]+limit|\blimit[\s_-]+reached\b.*\bitems?\b"
    r"|\bitems?\b.*\blimit[\s_-]+reached\b",
    re.IGNORECASE,
)


# Not frozen: one is built per item written, and frozen doubles what that costs.
@dataclass(slots=True)
class PendingItem:
    key: str
    field_data: Mapping[str, Any]
    slug: str
    content_hash: str
    target: Target
    webflow_id: str | None = None
    #: Secondary locales' own values: cmsLocaleId -> fieldData.
    locales: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Fingerprint of the source record, kept so an unchanged record is not mapped again.
    source_hash: str | None = None
    #: Hashes of every field of the record as mapped (JSON), for the log; None when
    #: ``field_data`` holds only some of them (a reference pass, a merge keeps its own).
    field_hashes: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    collection: str
    collection_id: str
    operation: Operation
    target: Target
    items: tuple[PendingItem, ...]
    #: For a localized collection: the primary cmsLocaleId first, then the secondary ones.
    locale_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class BatchOutcome:
    """What became of the items of one :meth:`Writer.write` or :meth:`Writer.publish`, counted
    once, by the code that did the work; the caller adds it to its summary and its progress."""

    created: int = 0
    updated: int = 0
    published: int = 0
    failed: int = 0
    publish_failed: int = 0
    #: Created, but the answer did not say which item is which: their intent stays.
    unresolved: int = 0

    @property
    def done(self) -> int:
        return self.created + self.updated + self.published

    @property
    def not_done(self) -> int:
        """Items of a write that did not make it, whatever the reason."""
        return self.failed + self.unresolved

    def counts(self) -> dict[str, int]:
        """The run summary's outcomes."""
        counted = {
            "created": self.created,
            "updated": self.updated,
            "published": self.published,
            "failed": self.failed,
            "publish_failed": self.publish_failed,
            "unresolved": self.unresolved,
        }
        return {outcome: n for outcome, n in counted.items() if n}


@dataclass(slots=True)
class WriterStats:
    """What the writer did besides its outcomes (requests are counted by :class:`WebflowApi`)."""

    rejected_batches: int = 0
    reconciled: int = 0
    #: Creates whose answer was lost (a 5xx, a dropped connection, a timeout), and the pages
    #: read back to learn what they created.
    lost_answers: int = 0
    read_back_pages: int = 0
    #: Records not created because the site is at its CMS item limit.
    over_item_limit: int = 0


class Writer:
    def __init__(
        self,
        api: WebflowApi,
        checkpoint: CheckpointLog,
        run_id: int,
        *,
        external_key_fields: Mapping[str, str] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.checkpoint = checkpoint
        self.run_id = run_id
        self.external_key_fields = dict(external_key_fields or {})
        self.stats = WriterStats()
        self._now = now
        #: Webflow's time, as its acknowledged creates show it: bounds a lost create's read-back.
        self.server_clock = ServerClock()
        #: Webflow's answer when the site reached its CMS item limit: set, no create is sent.
        self.item_limit_reached: str | None = None
        #: Room left under the item limit the job declares: with it, creates running side by
        #: side waste one request at most at the limit (see item_room). None: not bounded.
        self.item_room: ItemRoom | None = None

    # -- entry points ----------------------------------------------------------------------------

    async def write(self, batch: Batch) -> BatchOutcome:
        """Write one batch; return what became of its items."""
        outcome = BatchOutcome()
        await self._write(batch, outcome)
        return outcome

    async def _write(self, batch: Batch, outcome: BatchOutcome) -> None:
        if batch.operation == "create":
            await self._create(batch, outcome)
        else:
            await self._update(batch, outcome)

    async def publish(
        self,
        collection: str,
        collection_id: str,
        items: Sequence[tuple[str, str]],
        *,
        locale_ids: Sequence[str] = (),
        on_chunk: Callable[[int], None] | None = None,
    ) -> BatchOutcome:
        """Publish staged items, given as (source key, webflow id), in every given locale.

        At most 100 items a request, each locale counting as one; ``on_chunk`` is told how
        many items each request dealt with (for the progress display).
        """
        outcome = BatchOutcome()
        size = 100 // max(len(locale_ids), 1)
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            await self._publish_chunk(collection, collection_id, chunk, locale_ids, outcome)
            if on_chunk is not None:
                on_chunk(len(chunk))
        return outcome

    # -- creates ---------------------------------------------------------------------------------

    async def _create(self, batch: Batch, outcome: BatchOutcome) -> None:
        remaining = list(batch.items)
        lost_rounds = 0
        while remaining and lost_rounds < MAX_UNKNOWN_ROUNDS:
            if self.item_limit_reached is not None:
                self._fail_over_limit(batch, remaining, outcome)
                return
            missing, later = await self._create_round(batch, remaining, outcome)
            lost_rounds += bool(missing)
            remaining = missing + later
        if not remaining:
            return
        # Still missing after every round (each request's answer lost, each read back and the
        # items found absent): never created. Failed items, so the run says so (exit 1) and
        # the next run sends them again; a count of its own would let the run end 0.
        reason = (
            f"not created: the answers to {MAX_UNKNOWN_ROUNDS} create requests were lost and the "
            "items were not found when read back; the next run sends them again"
        )
        with self.checkpoint.batch(
            self.run_id, batch.collection, "create-lost", len(remaining)
        ) as record:
            outcome.failed += self._fail(record, remaining, "transport", reason, field=None)

    async def _create_round(
        self, batch: Batch, remaining: list[PendingItem], outcome: BatchOutcome
    ) -> tuple[list[PendingItem], list[PendingItem]]:
        """One create request, for as many of ``remaining`` as the room under the site's item
        limit allows; return (items sent but not found when read back, items not sent)."""
        taken = await self._take_room(len(remaining))
        sending, later = remaining[:taken], remaining[taken:]
        if self.item_limit_reached is not None:
            # Met while this request waited for room: nothing is sent.
            self._give_room_back(taken, created=0)
            return [], remaining
        made_before = outcome.created + outcome.unresolved
        try:
            missing, rejected = await self._send_round(batch, sending, outcome)
        finally:
            # As soon as the answer is known (a lost one once read back), and before a refused
            # batch's halves take room again.
            self._give_room_back(taken, created=outcome.created + outcome.unresolved - made_before)
        if rejected is not None:
            if _is_item_limit(rejected):
                # Every half would be refused as well: nothing more is sent to be created.
                self._fail_over_limit(batch, sending, outcome)
            else:
                await self._isolate(replace(batch, items=tuple(sending)), rejected, outcome)
        return missing, later

    async def _take_room(self, wanted: int) -> int:
        return wanted if self.item_room is None else await self.item_room.take(wanted)

    def _give_room_back(self, taken: int, *, created: int) -> None:
        if self.item_room is not None:
            self.item_room.give_back(taken, created=created)

    async def _send_round(
        self, batch: Batch, sending: list[PendingItem], outcome: BatchOutcome
    ) -> tuple[list[PendingItem], RequestRejected | None]:
        """Send one create request; return (items lost and not found when read back, the
        refusal if it was refused)."""
        #: Set when the answer was lost: Webflow's time span to read back.
        lost: tuple[datetime, datetime] | None = None
        rejected: RequestRejected | None = None
        with self.checkpoint.batch(
            self.run_id,
            batch.collection,
            f"create-{batch.target}",
            len(sending),
            intent=_intent_entries(batch, sending),
        ) as record:
            sent_at = self._now()
            last_request_sent.set(None)
            crashpoints.reach("before-send")
            crashpoints.reach_in_flight("in-flight")
            try:
                created = await self._send_creates(batch, sending)
            except (OutcomeUnknown, ServerError) as error:
                lost = self._lost_span(sent_at)
                self.stats.lost_answers += 1
                record.unknown(str(error), http_status=error.status)
            except RequestRejected as error:
                record.rejected(str(error), http_status=error.status)
                # Refused whole: nothing was created. The parts sent again have intents of
                # their own.
                record.settle_intent()
                rejected = error
                if _is_item_limit(error):
                    # Said before the room is given back: a create waiting for it sends nothing.
                    self.item_limit_reached = _reason(error)
            else:
                self._observe_clock(created)
                crashpoints.reach("after-answer")
                if batch.locale_ids:
                    primary = batch.locale_ids[0]
                    created = [i for i in created if i.cms_locale_id in (None, primary)]
                    await self._set_locale_values(batch, sending, created)
                self._acknowledge_created(batch, record, sending, created, outcome)
        if lost is None:
            return [], rejected
        missing = await self._reconcile(batch, sending, outcome, span=lost)
        # Read back: what landed is acknowledged, the rest goes in a new intent.
        self.checkpoint.settle_intent(record.id)
        return missing, None

    def _observe_clock(self, created: Sequence[Item]) -> None:
        sent = last_request_sent.get()
        if sent is not None:
            self.server_clock.observe(sent, time.monotonic(), (i.created_on for i in created))

    def _lost_span(self, sent_at: datetime) -> tuple[datetime, datetime]:
        """Webflow's time span in which a create whose answer was just lost made its items.

        Bounded by the ``createdOn`` of the run's acknowledged creates (see server_clock): a
        round trip wide, one page to read back. Before any create was acknowledged, the
        client's wall clock with RECONCILE_SKEW either side, for any skew with Webflow's.
        """
        sent = last_request_sent.get()
        span = self.server_clock.span(sent, time.monotonic()) if sent is not None else None
        if span is not None:
            return span
        return sent_at - RECONCILE_SKEW, self._now() + RECONCILE_SKEW

    def _fail_over_limit(
        self, batch: Batch, items: Sequence[PendingItem], outcome: BatchOutcome
    ) -> None:
        """Items not created because the site is at its item limit: failed, each with why."""
        reason = (
            f"not created: the site reached its CMS item limit (Webflow: "
            f"{self.item_limit_reached}); {ITEM_LIMIT_FIX}, {ITEM_LIMIT_RERUN}"
        )
        with self.checkpoint.batch(
            self.run_id, batch.collection, "item-limit", len(items)
        ) as record:
            outcome.failed += self._fail(record, items, "item_limit", reason, field=None)
            self.stats.over_item_limit += len(items)
            record.detail = "the site's item limit is reached"

    async def _send_creates(self, batch: Batch, items: Sequence[PendingItem]) -> list[Item]:
        if batch.locale_ids:
            return await self.api.create_items_in_locales(
                batch.collection_id,
                [i.field_data for i in items],
                cms_locale_ids=batch.locale_ids,
                is_draft=batch.target == "draft",
                collection=batch.collection,
            )
        return await self.api.create_items(
            batch.collection_id,
            [i.field_data for i in items],
            live=batch.target == "live",
            is_draft=batch.target == "draft",
            collection=batch.collection,
        )

    async def _set_locale_values(
        self, batch: Batch, sent: Sequence[PendingItem], created: Sequence[Item]
    ) -> None:
        """Give each secondary locale of new items its own values (a create copies the primary)."""
        by_slug = {item.slug: item.id for item in created}
        updates = [
            {"id": by_slug[pending.slug], "cmsLocaleId": locale_id, "fieldData": dict(values)}
            for pending in sent
            if pending.slug in by_slug
            for locale_id, values in pending.locales.items()
        ]
        for start in range(0, len(updates), 100):
            await self.api.update_items(
                batch.collection_id,
                updates[start : start + 100],
                live=False,
                collection=batch.collection,
            )

    def _acknowledge_created(
        self,
        batch: Batch,
        record: BatchRecord,
        sent: Sequence[PendingItem],
        created: Sequence[Item],
        outcome: BatchOutcome,
    ) -> None:
        by_slug = {item.slug: item for item in created}
        acks: list[Acknowledged] = []
        answered: list[tuple[PendingItem, Item]] = []
        unmatched: list[PendingItem] = []
        for position, pending in enumerate(sent):
            item = by_slug.get(pending.slug)
            # Webflow may suffix a duplicate slug instead of refusing it: fall back on order.
            if item is None and len(created) == len(sent):
                item = created[position]
            if item is None:
                unmatched.append(pending)
                continue
            acks.append(self._ack(batch, pending, item))
            answered.append((pending, item))
        record.acknowledge(acks)
        outcome.failed += _record_dropped_files(record, answered, acks)
        # Unmatched ones stay in flight: the next run reads them back instead of guessing.
        record.settle_intent(_intent_entries(batch, unmatched))
        record.http_status = 202
        outcome.created += len(acks)
        # Acknowledged without them: counted, not lost; their intent stays.
        outcome.unresolved += len(unmatched)

    def _ack(self, batch: Batch, pending: PendingItem, item: Item) -> Acknowledged:
        # An item Webflow wrote without a file is not what the record holds: marked, so the
        # next run sends it again.
        dropped = FILES_DROPPED if dropped_files(pending.field_data, item.field_data) else ""
        return Acknowledged(
            key=pending.key,
            webflow_id=item.id,
            slug=item.slug or pending.slug,
            content_hash=pending.content_hash + dropped,
            state="staged" if batch.target == "staged" else "done",
            source_hash=pending.source_hash,
            # When Webflow says this write happened, on Webflow's clock: a later lastUpdated
            # is someone else's change (see stages/edits.py).
            webflow_updated=item.last_updated,
            field_hashes=pending.field_hashes,
        )

    async def _isolate(self, batch: Batch, error: RequestRejected, outcome: BatchOutcome) -> None:
        """Split a rejected batch until each bad item stands alone with Webflow's reason."""
        self.stats.rejected_batches += 1
        items = list(batch.items)
        if len(items) == 1:
            with self.checkpoint.batch(self.run_id, batch.collection, "reject", 1) as record:
                outcome.failed += self._fail(
                    record, items, "validation", _reason(error), field=_first_param(error)
                )
                record.detail = _reason(error)
            return
        named = _indices_named(error, len(items))
        if named:
            with self.checkpoint.batch(
                self.run_id, batch.collection, "reject", len(named)
            ) as record:
                for index, (param, reason) in sorted(named.items()):
                    outcome.failed += self._fail(
                        record, [items[index]], "validation", reason, field=param
                    )
                record.detail = f"{len(named)} items rejected"
            good = tuple(item for index, item in enumerate(items) if index not in named)
            if good:
                await self._write(replace(batch, items=good), outcome)
            return
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            await self._write(replace(batch, items=tuple(half)), outcome)

    async def _reconcile(
        self,
        batch: Batch,
        sent: Sequence[PendingItem],
        outcome: BatchOutcome,
        *,
        span: tuple[datetime, datetime],
    ) -> list[PendingItem]:
        """Read back what a lost request may have created; return what is truly missing."""
        found = await self.find_existing(
            batch.collection, batch.collection_id, sent, created_from=span[0], created_to=span[1]
        )
        if found and batch.locale_ids:
            landed = [p for p in sent if p.key in found]
            await self._set_locale_values(batch, landed, [found[p.key] for p in landed])
        if found:
            answered = [(p, found[p.key]) for p in sent if p.key in found]
            acks = [self._ack(batch, pending, item) for pending, item in answered]
            with self.checkpoint.batch(
                self.run_id, batch.collection, "reconcile", len(found)
            ) as record:
                record.acknowledge(acks)
                # Read back, not answered: a file Webflow left out is named all the same.
                outcome.failed += _record_dropped_files(record, answered, acks)
            outcome.created += len(acks)
            self.stats.reconciled += len(acks)
        return [p for p in sent if p.key not in found]

    async def find_existing(
        self,
        collection: str,
        collection_id: str,
        wanted: Sequence[PendingItem],
        *,
        created_from: datetime | None,
        created_to: datetime | None = None,
    ) -> dict[str, Item]:
        """Match items Webflow created in a span of its time to pending records, by slug or
        external key.

        Only that span is read (the list endpoint's ``createdOn`` filters), newest first, and
        paging stops as soon as every record is found: reading back one lost batch costs one
        page, or two when it landed beside other creates.
        """
        by_slug = {p.slug: p.key for p in wanted}
        keys = {p.key for p in wanted}
        key_field = self.external_key_fields.get(collection)
        found: dict[str, Item] = {}
        pages = self.api.iter_created_between(
            collection_id, created_from, created_to, collection=collection
        )
        async for page in pages:
            self.stats.read_back_pages += 1
            for item in page:
                key = by_slug.get(item.slug or "")
                if key is None and key_field is not None:
                    external = item.field_data.get(key_field)
                    key = str(external) if external is not None else None
                    if key not in keys:
                        key = None
                if key is not None and key not in found:
                    found[key] = item
            if len(found) == len(wanted):
                break
        return found

    # -- updates ---------------------------------------------------------------------------------

    async def _update(self, batch: Batch, outcome: BatchOutcome) -> None:
        updates = _update_entries(batch)
        rejected: RequestRejected | None = None
        with self.checkpoint.batch(
            self.run_id, batch.collection, f"update-{batch.target}", len(batch.items)
        ) as record:
            try:
                returned = await self.api.update_items(
                    batch.collection_id,
                    updates,
                    live=batch.target == "live",
                    collection=batch.collection,
                )
            except RequestRejected as error:
                record.rejected(str(error), http_status=error.status)
                rejected = error
            except RateLimited:
                raise  # a server that never lets us in stops the run, as before
            except RetriableError as error:
                # Every retry spent. An update is idempotent and the log still holds the old
                # hashes, so whether or not it landed the next run sends it again: the items
                # are this run's errors, not the run's end.
                record.unknown(str(error), http_status=error.status)
                reason = (
                    f"Webflow did not take the update after its retries ({error}); the next run "
                    "sends it again"
                )
                outcome.failed += self._fail(record, batch.items, "unavailable", reason, field=None)
            else:
                crashpoints.reach("after-answer")
                by_id = _primary_variants(batch, returned)
                acks = self._acknowledge_updated(batch, by_id)
                record.acknowledge(acks)
                answered = [
                    (pending, by_id[pending.webflow_id])
                    for pending in batch.items
                    if pending.webflow_id in by_id
                ]
                outcome.failed += _record_dropped_files(record, answered, acks)
                record.http_status = 200
                outcome.updated += len(acks)
        if rejected is not None:
            await self._isolate(batch, rejected, outcome)

    def _acknowledge_updated(self, batch: Batch, by_id: Mapping[str, Item]) -> list[Acknowledged]:
        return [
            self._ack(
                batch,
                pending,
                by_id.get(pending.webflow_id or "")
                or Item(id=pending.webflow_id or "", fieldData=dict(pending.field_data)),
            )
            for pending in batch.items
        ]

    # -- publishing --------------------------------------------------------------------------------

    async def _publish_chunk(
        self,
        collection: str,
        collection_id: str,
        chunk: Sequence[tuple[str, str]],
        locale_ids: Sequence[str],
        outcome: BatchOutcome,
    ) -> None:
        ids = [webflow_id for _, webflow_id in chunk]
        with self.checkpoint.batch(self.run_id, collection, "publish", len(chunk)) as record:
            crashpoints.reach("before-publish")
            try:
                result = await self.api.publish_items(
                    collection_id, ids, cms_locale_ids=locale_ids, collection=collection
                )
            except RequestRejected as error:
                record.rejected(str(error), http_status=error.status)
                record.fail(
                    [
                        ItemFailure(key=key, field=None, reason=_reason(error), kind="publish")
                        for key, _ in chunk
                    ]
                )
                outcome.publish_failed += len(chunk)
                return
            crashpoints.reach("after-publish")
            # One commit for the answer, as for creates: its items and the batch's close together.
            self._settle_published(record, chunk, result, outcome)

    def _settle_published(
        self,
        record: BatchRecord,
        chunk: Sequence[tuple[str, str]],
        result: PublishResult,
        outcome: BatchOutcome,
    ) -> None:
        collection = record.collection
        published = set(result.published_item_ids)
        states = self.checkpoint.by_webflow_ids(
            collection, [webflow_id for _, webflow_id in chunk if webflow_id in published]
        )
        acks = [
            Acknowledged(
                key=state.key,
                webflow_id=webflow_id,
                slug=state.slug or "",
                content_hash=state.content_hash or "",
                state="done",
                # Kept: a published item was still written from the same record.
                source_hash=state.source_hash,
            )
            for webflow_id, state in states.items()
        ]
        failures = [
            ItemFailure(
                key=key,
                field=None,
                kind="publish",
                reason=_publish_error_for(webflow_id, result.errors),
            )
            for key, webflow_id in chunk
            if webflow_id not in published
        ]
        record.acknowledge(acks)
        if failures:
            record.fail(failures)
        record.http_status = 202
        outcome.published += len(acks)
        outcome.publish_failed += len(failures)

    # -- shared ----------------------------------------------------------------------------------

    def _fail(
        self,
        record: BatchRecord,
        items: Iterable[PendingItem],
        kind: str,
        reason: str,
        *,
        field: str | None,
    ) -> int:
        """Record the items as failed through the batch; return how many."""
        failures = [ItemFailure(key=i.key, field=field, reason=reason, kind=kind) for i in items]
        record.fail(failures)
        return len(failures)


#: Marks an intent whose secondary locales are not set yet: a lost answer is read back as
#: "changed", so the next run sets them.
LOCALES_PENDING = "~locales-pending"
#: Marks the stored hash of an item Webflow wrote without some of its files: the next run sends
#: it again (and Webflow fetches the files again).
FILES_DROPPED = "~files-dropped"


def _primary_variants(batch: Batch, returned: Sequence[Item]) -> dict[str, Item]:
    """Each updated item's primary-locale variant in an answer, by id."""
    primary_ids = batch.locale_ids[:1]
    # Webflow names each variant's locale, the primary's too: without locales, any one is it.
    return {
        item.id: item
        for item in returned
        if not primary_ids or item.cms_locale_id in (None, *primary_ids)
    }


def _record_dropped_files(
    record: BatchRecord,
    answered: Sequence[tuple[PendingItem, Item]],
    acks: Sequence[Acknowledged],
) -> int:
    """Files Webflow could not take and left out of written items (``skipInvalidFiles``): each
    such item is written, and its error names the field and the file; returns how many."""
    # The acknowledgements carry the mark already (see Writer._ack): only those are looked at.
    marked = {ack.key for ack in acks if ack.content_hash.endswith(FILES_DROPPED)}
    if not marked:
        return 0
    failures = []
    for pending, item in answered:
        if pending.key not in marked:
            continue
        dropped = dropped_files(pending.field_data, item.field_data)
        if dropped:
            named = "; ".join(f"{slug}: {what}" for slug, what in dropped)
            reason = (
                f"written without {len(dropped)} file field(s) Webflow could not fetch or "
                f"take (dead, not public, not an image, over 4 MB): {named}; the next run sends "
                "the item again"
            )
            failures.append(
                ItemFailure(key=pending.key, field=dropped[0][0], kind="file", reason=reason)
            )
    if failures:
        record.fail(failures)
    return len(failures)


def _intent_entries(batch: Batch, items: Sequence[PendingItem]) -> list[tuple[str, str, str]]:
    """What an intent records of each create: (key, slug, content hash as intended).

    The hash is what a later run's read-back stores for the item (``reconcile_leftovers``), with
    the marks of work an answer would have settled: secondary locales, and files Webflow fetches
    by URL, which the read-back cannot check (the values sent are not in the log): such an item
    is sent again, and that answer names a file Webflow left out."""
    locales = LOCALES_PENDING if batch.locale_ids else ""
    return [
        (
            i.key,
            i.slug,
            i.content_hash + locales + (FILES_DROPPED if fetches_files(i.field_data) else ""),
        )
        for i in items
    ]


def _update_entries(batch: Batch) -> list[dict[str, Any]]:
    """The PATCH body's entries: each item's primary values, then its secondary locales'."""
    updates: list[dict[str, Any]] = []
    for item in batch.items:
        primary: dict[str, Any] = {
            "id": item.webflow_id,
            "isArchived": False,
            "isDraft": item.target == "draft",
            "fieldData": dict(item.field_data),
        }
        if batch.locale_ids:
            primary["cmsLocaleId"] = batch.locale_ids[0]
        updates.append(primary)
        updates.extend(
            {"id": item.webflow_id, "cmsLocaleId": locale_id, "fieldData": dict(values)}
            for locale_id, values in item.locales.items()
        )
    return updates


#: What to do about the item limit, in every message that names it.
ITEM_LIMIT_FIX = "upgrade the site's plan (or its CMS item add-on), or delete items in Webflow"
#: After a run that met the limit: what becomes of the records it did not create.
ITEM_LIMIT_RERUN = "then run the job again: the next run creates the records left out"


def _is_item_limit(error: RequestRejected) -> bool:
    if error.body is None:
        return bool(_ITEM_LIMIT_ANSWER.search(str(error)))
    said = [error.body.code, error.body.message]
    said += [str(detail) for detail in error.body.details]
    return any(_ITEM_LIMIT_ANSWER.search(text or "") for text in said)


def _reason(error: RequestRejected) -> str:
    return error.body.describe() if error.body else str(error)


def _first_param(error: RequestRejected) -> str | None:
    if error.body is None:
        return None
    for detail in error.body.details:
        if isinstance(detail, Mapping) and (detail.get("param") or detail.get("field")):
            param = str(detail.get("param") or detail.get("field"))
            return _INDEX_IN_PARAM.sub("", param).lstrip(".").removeprefix("fieldData.") or None
    return None


def _indices_named(error: RequestRejected, size: int) -> dict[int, tuple[str | None, str]]:
    """Items a 400's details point at (``items[3]...`` or an ``index``): field and reason."""
    named: dict[int, tuple[str | None, str]] = {}
    if error.body is None:
        return named
    for detail in error.body.details:
        if not isinstance(detail, Mapping):
            continue
        index: int | None = None
        raw_index = detail.get("index", detail.get("itemIndex"))
        if isinstance(raw_index, int):
            index = raw_index
        else:
            match = _INDEX_IN_PARAM.search(str(detail.get("param") or detail.get("field") or ""))
            if match:
                index = int(match.group(1))
        if index is None or not 0 <= index < size:
            continue
        param = str(detail.get("param") or detail.get("field") or "")
        param = _INDEX_IN_PARAM.sub("", param).lstrip(".")
        param = param.removeprefix("fieldData.")
        text = str(detail.get("description") or detail.get("message") or error.body.message)
        reason = f"{param}: {text}" if param else text
        if index in named:
            named[index] = (named[index][0], f"{named[index][1]}; {reason}")
        else:
            named[index] = (param or None, reason)
    return named


def _publish_error_for(webflow_id: str, errors: Sequence[str]) -> str:
    for message in errors:
        if webflow_id in message:
            return message
    if errors:
        return errors[0]
    return "Webflow did not publish this item and gave no reason"
