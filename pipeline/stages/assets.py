"""The assets stage: the old site's images and files move into Webflow's assets (issue 15).

Between decide and dispatch::

    decide ──writes──▶ assets ──writes──▶ dispatch

It sees only what will be written (created or updated): an unchanged record never reaches it,
so a rerun fetches nothing. Content hashes were taken on the mapped record, that is on the
*source* URLs, before this stage rewrites them; a rerun therefore decides from the source alone.

For each write it finds the media the item uses (Image and File fields ``{"url", "alt"}``,
MultiImage lists of them, ``<img src>`` and ``<a href>`` to files inside RichText), keeps those
on the old site's hosts (``[assets] hosts``, or all with ``all_hosts``), moves each URL once
through :class:`~flowport.pipeline.media.MediaUploader` (a bounded pool; uploads take nothing
from the rate budget, creates do) and rewrites the item: an Image or File field becomes
``{"fileId", "url", "alt"}`` of the asset, a rich text ``src``/``href`` the hosted URL.

A file that cannot move is named per item (collection, key, field, URL, kind) and handled as
the job says for that field (``on_failure``): ``fail`` the item (an error, retried next run),
``skip`` the image (a warning; in rich text the ``<img>`` is removed, a link is kept), or
``keep_url`` (a warning; the original URL stays). An item written with a skipped or kept URL
is recorded with a content hash that no record maps to, so the next run tries its media again.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from flowport.base.models import CollectionSchema
from flowport.pipeline.checkpoint import CheckpointLog, ItemFailure, ItemWarning
from flowport.pipeline.jobfile import AssetSettings, OnFailure
from flowport.pipeline.logging import ProgressSink
from flowport.pipeline.media import (
    MediaFailure,
    MediaKind,
    MediaProbe,
    MediaUploader,
    Uploaded,
    is_file_url,
)
from flowport.pipeline.stages.executors import Executor
from flowport.pipeline.stages.summary import RunSummary
from flowport.pipeline.writer import PendingItem

__all__ = ["AssetCounts", "AssetStage", "MediaRef", "media_refs"]

#: ``<img … src="…">`` and ``<a … href="…">``, either quote.
_RICH_ATTR = re.compile(
    r"""(?P<head><(?P<tag>img|a)\b[^>]*?\s(?P<attr>src|href)\s*=\s*)"""
    r"""(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""",
    re.IGNORECASE,
)
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_FILE_FIELDS = frozenset({"Image", "File"})


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One file an item uses: where (field), what for (kind), and its source URL."""

    field: str
    url: str
    kind: MediaKind


@dataclass(slots=True)
class AssetCounts:
    """The run summary's ``assets``: files by what became of them, and bytes sent."""

    uploaded: int = 0
    bytes: int = 0
    deduplicated: int = 0
    reused: int = 0
    failed: int = 0
    #: A plan's: files a run would fetch (URLs the log does not know), the bytes of those
    #: whose size the old site told (HEAD), and how many did not say.
    planned: int = 0
    planned_bytes: int = 0
    planned_unknown_size: int = 0

    def as_dict(self) -> dict[str, int]:
        counted = {
            "uploaded": self.uploaded,
            "bytes": self.bytes,
            "deduplicated": self.deduplicated,
            "reused": self.reused,
            "failed": self.failed,
            "planned": self.planned,
            "planned_bytes": self.planned_bytes,
            "planned_unknown_size": self.planned_unknown_size,
        }
        return {name: n for name, n in counted.items() if n}


def media_refs(
    field_data: Mapping[str, Any], schema: CollectionSchema, moves: Callable[[str], bool]
) -> list[MediaRef]:
    """The files of the old site that ``field_data`` uses, in field order."""
    found: list[MediaRef] = []
    for slug, value in field_data.items():
        definition = schema.field(slug)
        if definition is None or value is None:
            continue
        kind = definition.type
        if kind in _FILE_FIELDS or kind == "MultiImage":
            media = MediaKind.FILE if kind == "File" else MediaKind.IMAGE
            entries = value if isinstance(value, list) else [value]
            found.extend(
                MediaRef(slug, entry["url"], media)
                for entry in entries
                if _movable_entry(entry) and moves(entry["url"])
            )
        elif kind == "RichText" and isinstance(value, str):
            found.extend(ref for ref in _rich_refs(slug, value) if moves(ref.url))
    return found


def _movable_entry(entry: Any) -> bool:
    # An entry that already names an asset (a fileId) is Webflow's: nothing to move.
    if not isinstance(entry, Mapping) or "fileId" in entry:
        return False
    return isinstance(entry.get("url"), str)


def _rich_refs(slug: str, text: str) -> Iterable[MediaRef]:
    for match in _RICH_ATTR.finditer(text):
        url = html.unescape(match["dq"] if match["dq"] is not None else match["sq"] or "")
        if not url.startswith(("http://", "https://")):
            continue
        tag, attr = match["tag"].lower(), match["attr"].lower()
        if tag == "img" and attr == "src":
            yield MediaRef(slug, url, MediaKind.IMAGE)
        elif tag == "a" and attr == "href" and is_file_url(url):
            yield MediaRef(slug, url, MediaKind.FILE)


Outcomes = Mapping[tuple[str, MediaKind], Uploaded | MediaFailure]


@dataclass(slots=True)
class _Rewritten:
    field_data: dict[str, Any]
    failures: list[ItemFailure] = field(default_factory=list)
    warnings: list[ItemWarning] = field(default_factory=list)


class AssetStage:
    def __init__(
        self,
        collection: str,
        schema: CollectionSchema,
        settings: AssetSettings,
        uploader: MediaUploader | None,
        probe: MediaProbe | None,
        site_id: str,
        executor: Executor,
        checkpoint: CheckpointLog,
        summary: RunSummary,
        sink: ProgressSink,
        counts: AssetCounts,
    ) -> None:
        self.collection = collection
        self.schema = schema
        self.settings = settings
        #: None in a plan: nothing is fetched or created; files are counted and HEAD-probed.
        self.uploader = uploader
        self.probe = probe
        self.site_id = site_id
        self.executor = executor
        self.checkpoint = checkpoint
        self.summary = summary
        self.sink = sink
        self.counts = counts

    async def run(
        self,
        receive: ObjectReceiveStream[list[PendingItem]],
        send: ObjectSendStream[list[PendingItem]],
    ) -> None:
        async with receive, send:
            async for writes in receive:
                kept = await self.move_chunk(writes)
                if kept:
                    await send.send(kept)

    async def move_chunk(self, writes: list[PendingItem]) -> list[PendingItem]:
        refs = {
            id(pending): self.refs_of(pending.field_data, pending.locales) for pending in writes
        }
        wanted = {(ref.url, ref.kind) for found in refs.values() for ref in found}
        if not wanted:
            return writes
        if self.uploader is None:
            await self.plan_files(wanted, refs.values(), writes)
            return writes
        outcomes = await self.move_all(self.uploader, wanted)
        kept: list[PendingItem] = []
        failures: list[ItemFailure] = []
        warnings: list[ItemWarning] = []
        for pending in writes:
            if not refs[id(pending)]:
                kept.append(pending)
                continue
            result = self.rewrite(pending, outcomes)
            failures.extend(result.failures)
            warnings.extend(result.warnings)
            if not result.failures:
                kept.append(pending)
        self.settle(failures, warnings)
        return kept

    def refs_of(
        self, field_data: Mapping[str, Any], locales: Mapping[str, Mapping[str, Any]]
    ) -> list[MediaRef]:
        found = media_refs(field_data, self.schema, self.settings.moves)
        for values in locales.values():
            found.extend(media_refs(values, self.schema, self.settings.moves))
        return found

    async def plan_files(
        self,
        wanted: set[tuple[str, MediaKind]],
        refs: Iterable[list[MediaRef]],
        writes: Sequence[PendingItem],
    ) -> None:
        """A plan's share: which files a run would fetch, their size, what is wrong with them."""
        counts, known = self.counts, self.checkpoint.assets.by_source_url
        fresh = []
        for url, kind in sorted(wanted):
            row = known(self.site_id, url)
            if row is not None and row.state == "uploaded":
                counts.reused += 1
            else:
                fresh.append((url, kind))
        counts.planned += len(fresh)
        if self.probe is None or not fresh:
            return
        probe = self.probe
        limiter = anyio.CapacityLimiter(self.settings.concurrency)
        problems: list[MediaFailure] = []

        async def look(url: str, kind: MediaKind) -> None:
            async with limiter:
                probed = await probe.head(url, kind)
            if probed.size is None:
                counts.planned_unknown_size += 1
            else:
                counts.planned_bytes += probed.size
            if probed.problem is not None:
                problems.append(probed.problem)

        async with anyio.create_task_group() as group:
            for url, kind in fresh:
                group.start_soon(look, url, kind)
        self.note_problems(problems, refs, writes)

    def note_problems(
        self,
        problems: Sequence[MediaFailure],
        refs: Iterable[list[MediaRef]],
        writes: Sequence[PendingItem],
    ) -> None:
        users: dict[str, list[tuple[str, str]]] = {}
        for pending, found in zip(writes, refs, strict=True):
            for ref in found:
                users.setdefault(ref.url, []).append((pending.key, ref.field))
        counts = self.counts
        for problem in sorted(problems, key=lambda p: p.source_url):
            counts.failed += 1
            used = users.get(problem.source_url, [])
            first = f"{self.collection} {used[0][0]} ({used[0][1]})" if used else self.collection
            more = f" and {len(used) - 1} more" if len(used) > 1 else ""
            self.summary.notes.append(
                f"media {problem.kind}: {problem.source_url}: {problem.detail}; "
                f"used by {first}{more}"
            )

    async def move_all(
        self, uploader: MediaUploader, wanted: set[tuple[str, MediaKind]]
    ) -> dict[tuple[str, MediaKind], Uploaded | MediaFailure]:
        """Every file of a chunk, ``concurrency`` at a time; the uploader dedupes."""
        outcomes: dict[tuple[str, MediaKind], Uploaded | MediaFailure] = {}
        limiter = anyio.CapacityLimiter(self.settings.concurrency)

        async def move(url: str, kind: MediaKind) -> None:
            async with limiter:
                outcomes[(url, kind)] = await uploader.upload(url, kind=kind)

        async with anyio.create_task_group() as group:
            for url, kind in sorted(wanted):
                group.start_soon(move, url, kind)
        for outcome in outcomes.values():
            self.count(outcome)
        return outcomes

    def count(self, outcome: Uploaded | MediaFailure) -> None:
        counts = self.counts
        if isinstance(outcome, MediaFailure):
            counts.failed += 1
        elif outcome.reused:
            counts.reused += 1
        elif outcome.deduplicated:
            counts.deduplicated += 1
        else:
            counts.uploaded += 1
            counts.bytes += outcome.size

    def rewrite(self, pending: PendingItem, outcomes: Outcomes) -> _Rewritten:
        result = self.rewrite_values(pending.key, pending.field_data, outcomes)
        pending.field_data = result.field_data
        if pending.locales:
            locales: dict[str, Mapping[str, Any]] = {}
            for locale_id, values in pending.locales.items():
                variant = self.rewrite_values(pending.key, values, outcomes)
                locales[locale_id] = variant.field_data
                result.failures.extend(variant.failures)
                result.warnings.extend(variant.warnings)
            pending.locales = locales
        if result.failures:
            # An item has one error in the log: the first file that failed it names it.
            result.failures = result.failures[:1]
        elif result.warnings:
            # Written with a file that did not move: the next run maps the record again (no
            # source fingerprint) and finds a changed hash, so it tries the media again.
            pending.source_hash = None
            pending.content_hash = _degraded(pending.content_hash)
        return result

    def rewrite_values(self, key: str, values: Mapping[str, Any], outcomes: Outcomes) -> _Rewritten:
        result = _Rewritten(dict(values))
        for slug, value in values.items():
            definition = self.schema.field(slug)
            if definition is None or value is None:
                continue
            policy = self.settings.on_failure_for(self.collection, slug)
            kind = definition.type
            note = _Notes(self.collection, key, slug, policy, result)
            if kind in _FILE_FIELDS:
                media = MediaKind.FILE if kind == "File" else MediaKind.IMAGE
                moved = self.moved_entry(value, media, outcomes, note)
                if moved is _DROP:
                    del result.field_data[slug]
                else:
                    result.field_data[slug] = moved
            elif kind == "MultiImage" and isinstance(value, list):
                entries = [self.moved_entry(e, MediaKind.IMAGE, outcomes, note) for e in value]
                result.field_data[slug] = [e for e in entries if e is not _DROP]
            elif kind == "RichText" and isinstance(value, str):
                result.field_data[slug] = self.moved_rich_text(value, outcomes, note)
        return result

    def moved_entry(self, entry: Any, media: MediaKind, outcomes: Outcomes, note: _Notes) -> Any:
        if not _movable_entry(entry):
            return entry
        outcome = outcomes.get((entry["url"], media))
        if outcome is None:
            return entry  # not the old site's
        if isinstance(outcome, Uploaded):
            moved = {"fileId": outcome.asset_id, "url": outcome.hosted_url}
            if entry.get("alt"):
                moved["alt"] = entry["alt"]
            return moved
        return entry if note.failed(outcome, removable=True) == "keep_url" else _DROP

    def moved_rich_text(self, text: str, outcomes: Outcomes, note: _Notes) -> str:
        def replace(match: re.Match[str]) -> str:
            raw = match["dq"] if match["dq"] is not None else match["sq"] or ""
            tag, attr = match["tag"].lower(), match["attr"].lower()
            media = MediaKind.IMAGE if tag == "img" and attr == "src" else MediaKind.FILE
            outcome = outcomes.get((html.unescape(raw), media))
            if outcome is None:
                return match[0]
            if isinstance(outcome, Uploaded):
                return f'{match["head"]}"{html.escape(outcome.hosted_url, quote=True)}"'
            if note.failed(outcome, removable=media is MediaKind.IMAGE) == "skip":
                return match[0] + _SKIP_MARK
            return match[0]

        rewritten = _RICH_ATTR.sub(replace, text)
        if _SKIP_MARK in rewritten:
            # A skipped image goes with its whole tag (its src was marked just above).
            rewritten = _IMG_TAG.sub(lambda m: "" if _SKIP_MARK in m[0] else m[0], rewritten)
            rewritten = rewritten.replace(_SKIP_MARK, "")
        return rewritten

    def settle(self, failures: Sequence[ItemFailure], warnings: Sequence[ItemWarning]) -> None:
        name = self.collection
        if failures:
            self.summary.count(name, "failed", len(failures))
            self.sink.advanced(name, failed=len(failures))
            self.executor.record_failures(name, failures)
        if warnings:
            # After mapping's warnings of the same records (decide replaced them before it
            # sent these writes on), so added, not replacing.
            self.checkpoint.warnings.add(name, warnings)


#: Put after a skipped image's ``src`` value, inside its tag, to find the tag again.
_SKIP_MARK = "\u0000flowport-skip\u0000"
_DROP: Any = object()


@dataclass(slots=True)
class _Notes:
    """Names each file that did not move, for one item and field, as the policy says."""

    collection: str
    key: str
    field: str
    policy: OnFailure
    result: _Rewritten

    def failed(self, failure: MediaFailure, *, removable: bool) -> OnFailure:
        """Record ``failure``; answer what was done (a link in rich text is never removed)."""
        policy = self.policy
        what = f"{failure.source_url} ({failure.kind}): {failure.detail}"
        if policy == "fail":
            self.result.failures.append(
                ItemFailure(self.key, self.field, f"file not moved: {what}", kind="media")
            )
            return policy
        if policy == "skip" and not removable:
            policy = "keep_url"
        done = "skipped" if policy == "skip" else "kept the original URL"
        self.result.warnings.append(
            ItemWarning(self.key, self.field, f"media_{failure.kind}", f"{done}: {what}")
        )
        return policy


def _degraded(content_hash: str) -> str:
    return hashlib.sha256(f"media-incomplete:{content_hash}".encode()).hexdigest()[:32]
