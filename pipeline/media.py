"""Media into Webflow's assets: fetch a source URL, check and hash it, create the asset, upload it.

The foundation of the assets stage (issue 15). :class:`MediaUploader` turns one source URL into
an asset of the site and answers :class:`Uploaded` (asset id, hosted URL) or a named
:class:`MediaFailure`; nothing here touches items, the runner or the checkpoint log.

    fetch (streamed, bounded, timeouts, retries)  ->  identify by content  ->  SHA-256 / MD5
      ->  ledger.known(sha256)? answer it       (the same bytes are uploaded once per site)
      ->  ledger.record_intent  ->  create the asset (MD5)  ->  presigned upload (no token,
          no rate budget)  ->  ledger.record_uploaded

Failures are data, one kind per cause, so a later stage can name them per item and apply the
job's policy (skip the image, fail the item, keep the URL): ``too_large``, ``not_found``,
``timeout``, ``not_an_image``, ``unsupported_type``, ``http_error``, ``unreachable``,
``checksum_mismatch``, ``rejected``, ``unavailable``. A fatal answer from Webflow (401, an
unknown site) is not a per-file failure: it propagates and stops the run.

:class:`AssetLedger` is where the checkpoint log's assets table will plug in (intent before the
create, reconcile after a crash); :class:`InMemoryAssetLedger` dedupes within one run meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import PurePosixPath
from types import TracebackType
from typing import Literal, Protocol, Self, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import anyio
from aiolimiter import AsyncLimiter

from flowport.base.errors import (
    FlowportError,
    NotFoundError,
    RateLimited,
    RequestRejected,
    RetriableError,
    ServerError,
    TransportError,
    parse_retry_after,
)
from flowport.base.models import Asset, AssetUpload
from flowport.pipeline import __version__, crashpoints
from flowport.pipeline.checkpoint import AssetRow, CheckpointLog
from flowport.pipeline.retry import RetryPolicy, call_with_retries
from flowport.pipeline.webflow.client import WebflowClient

__all__ = [
    "AssetIntent",
    "AssetLedger",
    "AssetRecord",
    "CheckpointAssetLedger",
    "FailureKind",
    "HostPace",
    "InMemoryAssetLedger",
    "MediaFailure",
    "MediaKind",
    "MediaLimits",
    "MediaProbe",
    "MediaUploader",
    "PendingAsset",
    "Probed",
    "ReconcileResult",
    "Uploaded",
    "is_file_url",
]

T = TypeVar("T")

FailureKind = Literal[
    "too_large",
    "not_found",
    "timeout",
    "not_an_image",
    "unsupported_type",
    "http_error",
    "unreachable",
    "checksum_mismatch",
    "rejected",
    "unavailable",
]


class MediaKind(StrEnum):
    """What the file is for: an Image/MultiImage field or an ``<img>``, or a File field."""

    IMAGE = "image"
    FILE = "file"


#: Types Webflow's assets take, with the extension a file of that type is named with.
IMAGE_TYPES: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/svg+xml": "svg",
}
FILE_TYPES: dict[str, str] = {
    **IMAGE_TYPES,
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-powerpoint": "ppt",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/plain": "txt",
    "text/csv": "csv",
    "application/zip": "zip",
}
_EXTENSION_TYPES = {ext: mime for mime, ext in FILE_TYPES.items()} | {"jpeg": "image/jpeg"}
# Magic numbers: the bytes decide what a file is, not the URL or the Content-Type header.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # doc, xls, ppt
    (b"PK\x03\x04", "application/zip"),  # also docx, xlsx, pptx
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")


@dataclass(frozen=True, slots=True)
class MediaLimits:
    #: Webflow's limit for CMS images (4 MB, read as decimal: the stricter reading).
    image_max_bytes: int = 4_000_000
    #: Other files; Webflow's documented 10 MB by default, configurable.
    file_max_bytes: int = 10_000_000
    connect_seconds: float = 10.0
    #: The longest silence between two chunks of one download.
    read_seconds: float = 30.0
    #: One whole download attempt, however steadily a slow server trickles.
    total_seconds: float = 120.0
    max_redirects: int = 10
    #: Requests a second to each old-site host (downloads and a plan's HEADs, retries included).
    downloads_per_second: float = 20.0
    retry: RetryPolicy = field(
        # A source host's 429s get as few tries as its failures: it is not our budget to wait.
        default_factory=lambda: RetryPolicy(
            max_attempts=3, max_rate_limited=3, base_delay=0.5, max_delay=10.0
        )
    )

    def max_bytes(self, kind: MediaKind) -> int:
        return self.image_max_bytes if kind is MediaKind.IMAGE else self.file_max_bytes


@dataclass(frozen=True, slots=True)
class AssetIntent:
    """What is about to be created, recorded before the create leaves."""

    sha256: str
    md5: str
    source_url: str
    file_name: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """An asset whose bytes storage acknowledged."""

    sha256: str
    md5: str
    source_url: str
    asset_id: str
    hosted_url: str
    file_name: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class PendingAsset:
    """A create a killed run left unsettled: announced (``asset_id`` None: it may or may not
    have landed) or answered (the upload to storage may not have landed)."""

    intent: AssetIntent
    asset_id: str | None = None
    hosted_url: str | None = None


class AssetLedger(Protocol):
    """Where uploads are remembered: by content (SHA-256), so the same bytes are one asset, and
    by source URL, so a rerun fetches nothing it moved before.

    The checkpoint log's implementation (:class:`CheckpointAssetLedger`) is durable, with the
    same crash rules as items: the intent is committed before the create leaves, the asset id
    once Webflow answered, and an intent left unsettled is reconciled (:meth:`MediaUploader.
    reconcile`) before anything is sent again."""

    def known(self, sha256: str) -> AssetRecord | None: ...

    def known_url(self, source_url: str) -> AssetRecord | None: ...

    def link(self, source_url: str, sha256: str) -> None: ...

    def record_intent(self, intent: AssetIntent) -> None: ...

    def record_created(self, intent: AssetIntent, asset_id: str, hosted_url: str) -> None: ...

    def record_uploaded(self, record: AssetRecord) -> None: ...

    def record_failed(self, intent: AssetIntent, kind: str, detail: str) -> None: ...

    def forget(self, sha256: str) -> None: ...

    def unsettled(self) -> Sequence[PendingAsset]: ...

    def is_empty(self) -> bool:
        """Whether no asset of the site is remembered at all (a first run, or a lost log)."""
        ...


class InMemoryAssetLedger:
    """Dedupes within one run; forgets everything at exit (no crash recovery)."""

    def __init__(self) -> None:
        self._uploaded: dict[str, AssetRecord] = {}
        self._urls: dict[str, str] = {}
        self._intents: dict[str, PendingAsset] = {}

    def known(self, sha256: str) -> AssetRecord | None:
        return self._uploaded.get(sha256)

    def known_url(self, source_url: str) -> AssetRecord | None:
        sha256 = self._urls.get(source_url)
        return self._uploaded.get(sha256) if sha256 is not None else None

    def link(self, source_url: str, sha256: str) -> None:
        self._urls[source_url] = sha256

    def record_intent(self, intent: AssetIntent) -> None:
        self._intents[intent.sha256] = PendingAsset(intent)

    def record_created(self, intent: AssetIntent, asset_id: str, hosted_url: str) -> None:
        self._intents[intent.sha256] = PendingAsset(intent, asset_id, hosted_url)

    def record_uploaded(self, record: AssetRecord) -> None:
        self._intents.pop(record.sha256, None)
        self._uploaded[record.sha256] = record
        self._urls[record.source_url] = record.sha256

    def record_failed(self, intent: AssetIntent, kind: str, detail: str) -> None:
        self._intents.pop(intent.sha256, None)

    def forget(self, sha256: str) -> None:
        self._intents.pop(sha256, None)

    def unsettled(self) -> Sequence[PendingAsset]:
        return tuple(self._intents.values())

    def is_empty(self) -> bool:
        return not self._uploaded and not self._intents

    @property
    def pending(self) -> tuple[AssetIntent, ...]:
        """Intents whose upload was never acknowledged (a create or upload that failed)."""
        return tuple(p.intent for p in self._intents.values())

    @property
    def uploaded(self) -> tuple[AssetRecord, ...]:
        return tuple(self._uploaded.values())


class CheckpointAssetLedger:
    """The ledger in the checkpoint log's ``assets`` tables, for one site: it survives the
    process."""

    def __init__(self, log: CheckpointLog, site_id: str) -> None:
        self._rows = log.assets
        self._site = site_id

    def known(self, sha256: str) -> AssetRecord | None:
        return _record_of(self._rows.by_sha256(self._site, sha256))

    def known_url(self, source_url: str) -> AssetRecord | None:
        return _record_of(self._rows.by_source_url(self._site, source_url))

    def link(self, source_url: str, sha256: str) -> None:
        self._rows.link_sources(self._site, sha256, [source_url])

    def record_intent(self, intent: AssetIntent) -> None:
        self._rows.record_intent(
            self._site,
            AssetRow(
                sha256=intent.sha256,
                md5=intent.md5,
                source_url=intent.source_url,
                file_name=intent.file_name,
                content_type=intent.content_type,
                size=intent.size,
                state="intent",
                asset_id=None,
                hosted_url=None,
                failure_kind=None,
                detail=None,
            ),
        )

    def record_created(self, intent: AssetIntent, asset_id: str, hosted_url: str) -> None:
        self._rows.record_created(self._site, intent.sha256, asset_id, hosted_url)

    def record_uploaded(self, record: AssetRecord) -> None:
        self._rows.record_uploaded(
            self._site, record.sha256, record.asset_id, record.hosted_url, [record.source_url]
        )

    def record_failed(self, intent: AssetIntent, kind: str, detail: str) -> None:
        self._rows.record_failed(self._site, intent.sha256, kind, detail)

    def forget(self, sha256: str) -> None:
        self._rows.forget(self._site, sha256)

    def unsettled(self) -> Sequence[PendingAsset]:
        return [
            PendingAsset(
                AssetIntent(
                    sha256=row.sha256,
                    md5=row.md5,
                    source_url=row.source_url,
                    file_name=row.file_name,
                    content_type=row.content_type,
                    size=row.size,
                ),
                row.asset_id,
                row.hosted_url,
            )
            for row in self._rows.pending(self._site)
        ]

    def is_empty(self) -> bool:
        return not self._rows.any_in(self._site)


def _record_of(row: AssetRow | None) -> AssetRecord | None:
    if row is None or row.state != "uploaded" or not row.asset_id or not row.hosted_url:
        return None
    return AssetRecord(
        sha256=row.sha256,
        md5=row.md5,
        source_url=row.source_url,
        asset_id=row.asset_id,
        hosted_url=row.hosted_url,
        file_name=row.file_name,
        content_type=row.content_type,
        size=row.size,
    )


@dataclass(frozen=True, slots=True)
class Uploaded:
    source_url: str
    asset_id: str
    hosted_url: str
    sha256: str
    size: int
    content_type: str
    #: True when no upload was needed: the same bytes were uploaded before (any URL).
    deduplicated: bool = False
    #: True when nothing was even fetched: the checkpoint log knew this URL from a past run.
    reused: bool = False


@dataclass(slots=True)
class ReconcileResult:
    """What :meth:`MediaUploader.reconcile` found of a killed run's creates."""

    #: Created, and its bytes are served: recorded as uploaded.
    kept: int = 0
    #: Created, bytes missing (or a second copy): deleted from the site.
    deleted: int = 0
    #: Not (or no longer) in the site: the content is created afresh when needed.
    forgotten: int = 0


@dataclass(frozen=True, slots=True)
class MediaFailure:
    source_url: str
    kind: FailureKind
    detail: str


class _Refused(Exception):
    """A download that will not succeed by trying again: its failure, ready to answer."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(eq=False)
class _DownloadTimedOut(TransportError):
    """A timeout, told apart from a refused connection when the retries are spent."""


@dataclass(frozen=True, slots=True)
class _Download:
    data: bytes
    declared_type: str
    final_url: str


class MediaUploader:
    """``async with MediaUploader(client, site_id) as media: await media.upload(url)``.

    ``client`` must be open (inside its own ``async with``); the uploader owns only the session
    it downloads with, which never carries the Webflow token."""

    def __init__(
        self,
        client: WebflowClient,
        site_id: str,
        *,
        ledger: AssetLedger | None = None,
        limits: MediaLimits | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._client = client
        self._site_id = site_id
        self.ledger: AssetLedger = ledger if ledger is not None else InMemoryAssetLedger()
        self.limits = limits or MediaLimits()
        self._pace = HostPace(self.limits.downloads_per_second)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._by_url: dict[tuple[str, MediaKind], Uploaded | MediaFailure] = {}
        self._url_locks: dict[tuple[str, MediaKind], anyio.Lock] = {}
        self._hash_locks: dict[str, anyio.Lock] = {}
        self._failed_hashes: dict[str, MediaFailure] = {}
        #: With nothing remembered of the site (a first run, or a lost checkpoint log), the
        #: site's own assets are listed once, on the first file to create: an asset an earlier
        #: run made for the same bytes is taken, not made twice (see :meth:`_adopted`).
        self._look_in_site = False
        self._site_assets: dict[str, list[Asset]] | None = None
        self._listing = anyio.Lock()
        #: Calls to Webflow's API (asset creates, deletes, list pages; retries included), which
        #: take from the rate budget as item writes do; uploads to storage are not among them.
        self.api_calls = 0

    async def __aenter__(self) -> Self:
        limits = self.limits
        self._look_in_site = self.ledger.is_empty()
        self._session = _old_site_session(
            aiohttp.ClientTimeout(
                total=None, sock_connect=limits.connect_seconds, sock_read=limits.read_seconds
            ),
            "media",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _close(self._session)
        self._session = None

    async def upload(
        self, url: str, *, kind: MediaKind = MediaKind.IMAGE
    ) -> Uploaded | MediaFailure:
        """The asset for ``url``'s bytes: uploaded now, or found by URL or content hash."""
        key = (url, kind)
        lock = self._url_locks.setdefault(key, anyio.Lock())
        async with lock:
            earlier = self._by_url.get(key)
            if earlier is not None:
                # A URL used by many records is fetched once per run.
                return (
                    replace(earlier, deduplicated=True)
                    if isinstance(earlier, Uploaded)
                    else earlier
                )
            moved = self.ledger.known_url(url)
            if moved is not None:
                # Moved by an earlier run: nothing is fetched, nothing is sent.
                result: Uploaded | MediaFailure = replace(
                    _uploaded(url, moved, deduplicated=True), reused=True
                )
            else:
                result = await self._fetch_and_upload(url, kind)
            self._by_url[key] = result
            return result

    async def _fetch_and_upload(self, url: str, kind: MediaKind) -> Uploaded | MediaFailure:
        try:
            download = await call_with_retries(
                lambda: self._download(url, kind),
                policy=self.limits.retry,
                budget=None,
                idempotent=True,
                sleep=self._sleep,
            )
            content_type = _identify(download, kind)
        except _Refused as refused:
            return MediaFailure(url, refused.kind, refused.detail)
        except _DownloadTimedOut as timed_out:
            return MediaFailure(url, "timeout", str(timed_out))
        except RetriableError as problem:
            return MediaFailure(url, "unreachable", str(problem))
        data = download.data
        sha256 = hashlib.sha256(data).hexdigest()
        lock = self._hash_locks.setdefault(sha256, anyio.Lock())
        async with lock:
            known = self.ledger.known(sha256)
            if known is not None:
                self.ledger.link(url, sha256)
                return _uploaded(url, known, deduplicated=True)
            failed = self._failed_hashes.get(sha256)
            if failed is not None:
                # Not sent twice in one run: an unsettled create is the next run's to reconcile.
                return MediaFailure(url, failed.kind, failed.detail)
            intent = AssetIntent(
                sha256=sha256,
                md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                source_url=url,
                file_name=_file_name(url, content_type, sha256),
                content_type=content_type,
                size=len(data),
            )
            adopted = await self._adopted(intent)
            if adopted is not None:
                return _uploaded(url, adopted, deduplicated=True)
            result = await self._create_and_upload(intent, data)
            if isinstance(result, MediaFailure):
                self._failed_hashes[sha256] = result
            return result

    async def _create_and_upload(self, intent: AssetIntent, data: bytes) -> Uploaded | MediaFailure:
        # Durable before the create leaves: a kill from here on leaves an intent that the next
        # run reconciles by the file name (it carries the content's hash) before creating again.
        self.ledger.record_intent(intent)
        crashpoints.reach("asset-intent")
        try:
            created = await self._create(intent)
        except RequestRejected as refused:
            detail = f"{refused.code}: {refused}"
            self.ledger.record_failed(intent, _rejection_kind(refused.code), detail)
            return MediaFailure(intent.source_url, _rejection_kind(refused.code), detail)
        except RetriableError as problem:
            # The create may have landed: the intent stays for the next run to reconcile.
            return MediaFailure(intent.source_url, "unavailable", str(problem))
        crashpoints.reach("asset-answered")
        self.ledger.record_created(intent, created.id, created.hosted_url)
        crashpoints.reach("asset-created")
        try:
            await call_with_retries(
                lambda: self._client.upload_asset(created, data),
                policy=self.limits.retry,
                budget=None,  # storage is not Webflow's API: no rate budget
                idempotent=True,  # the same bytes to the same key
                sleep=self._sleep,
            )
        except RequestRejected as refused:
            detail = f"{refused.code}: {refused}"
            await self._discard(created.id)
            self.ledger.record_failed(intent, _rejection_kind(refused.code), detail)
            return MediaFailure(intent.source_url, _rejection_kind(refused.code), detail)
        except RetriableError as problem:
            # The bytes may have landed: the 'created' row stays for the next run to check.
            return MediaFailure(intent.source_url, "unavailable", str(problem))
        crashpoints.reach("asset-uploaded")
        record = _record(intent, created.id, created.hosted_url)
        self.ledger.record_uploaded(record)
        return _uploaded(intent.source_url, record, deduplicated=False)

    async def _create(self, intent: AssetIntent) -> AssetUpload:
        client = self._client
        # Not idempotent: a create whose answer was lost is not sent again blindly (it would
        # leave a second asset); the intent is reconciled by listing the site's assets.
        created: AssetUpload = await call_with_retries(
            lambda: self._counted(
                client.create_asset(self._site_id, file_name=intent.file_name, file_hash=intent.md5)
            ),
            policy=self.limits.retry,
            budget=client.budget,
            idempotent=False,
            sleep=self._sleep,
        )
        return created

    async def _discard(self, asset_id: str) -> None:
        """Delete an asset whose bytes never landed; best effort (the next run checks too)."""
        with contextlib.suppress(FlowportError):
            await self._counted(self._client.delete_asset(asset_id))

    async def _counted(self, call: Awaitable[T]) -> T:
        self.api_calls += 1
        return await call

    async def reconcile(self) -> ReconcileResult:
        """Settle the creates a killed run left: each announced or answered create is found
        (by the marked file name) and kept if its bytes are served with the right MD5, or
        deleted and forgotten, so the content is created once, afresh, when a record needs it.
        Runs before anything is created; lists the site's assets once, only if needed."""
        result = ReconcileResult()
        unsettled = list(self.ledger.unsettled())
        if not unsettled:
            return result
        by_name: dict[str, list[Asset]] | None = None
        for pending in unsettled:
            candidates: list[tuple[str, str]] = []
            if pending.asset_id is not None and pending.hosted_url is not None:
                candidates.append((pending.asset_id, pending.hosted_url))
            else:
                if by_name is None:
                    by_name = await self._assets_by_name()
                named = by_name.get(pending.intent.file_name, [])
                candidates.extend((asset.id, asset.hosted_url) for asset in named)
            await self._settle(pending.intent, candidates, result)
        return result

    async def _settle(
        self, intent: AssetIntent, candidates: list[tuple[str, str]], result: ReconcileResult
    ) -> None:
        kept: AssetRecord | None = None
        for asset_id, hosted_url in candidates:
            if kept is None and await self._landed(hosted_url, intent.md5):
                kept = _record(intent, asset_id, hosted_url)
                continue
            await self._delete(asset_id)
            result.deleted += 1
        if kept is not None:
            self.ledger.record_uploaded(kept)
            result.kept += 1
        else:
            self.ledger.forget(intent.sha256)
            result.forgotten += 1

    async def _delete(self, asset_id: str) -> None:
        """Delete a half-made asset; one already gone (a 404, e.g. after a lost answer) is
        what was wanted."""
        client = self._client
        with contextlib.suppress(NotFoundError):
            await call_with_retries(
                lambda: self._counted(client.delete_asset(asset_id)),
                policy=self.limits.retry,
                budget=client.budget,
                idempotent=True,
                sleep=self._sleep,
            )

    async def _adopted(self, intent: AssetIntent) -> AssetRecord | None:
        """An asset of the site that already serves these bytes under the name this content
        gets (it carries the content's hash): one an earlier run made and whose record went
        with a lost checkpoint log. Looked for only when the log knows no asset of the site."""
        if not self._look_in_site:
            return None
        async with self._listing:
            if self._site_assets is None:
                self._site_assets = await self._assets_by_name()
        for asset in self._site_assets.get(intent.file_name, []):
            if await self._landed(asset.hosted_url, intent.md5):
                record = _record(intent, asset.id, asset.hosted_url)
                self.ledger.record_intent(intent)
                self.ledger.record_uploaded(record)
                return record
        return None

    async def _assets_by_name(self) -> dict[str, list[Asset]]:
        by_name: dict[str, list[Asset]] = {}
        # Pages of 100: counted as the calls they are, from the listing's length.
        listed = 0
        async for asset in self._client.iter_assets(self._site_id):
            listed += 1
            by_name.setdefault(asset.original_file_name, []).append(asset)
        self.api_calls += listed // 100 + 1
        return by_name

    async def _landed(self, hosted_url: str, md5: str) -> bool:
        """Whether the asset serves the bytes we meant (an asset's listing is no proof)."""
        if self._session is None:
            raise RuntimeError("MediaUploader is used outside its 'async with' block")
        try:
            with anyio.fail_after(self.limits.total_seconds):
                async with self._session.get(hosted_url) as response:
                    if response.status != 200:
                        return False
                    digest = hashlib.md5(usedforsecurity=False)
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        digest.update(chunk)
                    return digest.hexdigest() == md5
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def _download(self, url: str, kind: MediaKind) -> _Download:
        if self._session is None:
            raise RuntimeError("MediaUploader is used outside its 'async with' block")
        limit = self.limits.max_bytes(kind)
        await self._pace.wait(url)
        try:
            with anyio.fail_after(self.limits.total_seconds):
                async with self._session.get(
                    url, allow_redirects=True, max_redirects=self.limits.max_redirects
                ) as response:
                    _check_status(response)
                    declared = response.content_length
                    if declared is not None and declared > limit:
                        raise _too_large(declared, limit)
                    data = await _read_bounded(response, limit)
                    return _Download(data, response.content_type, str(response.url))
        except TimeoutError:
            raise _DownloadTimedOut(
                message=f"no complete answer from {_host(url)} in time"
            ) from None
        except aiohttp.TooManyRedirects:
            raise _Refused("http_error", "too many redirects") from None
        except aiohttp.InvalidURL:
            raise _Refused("http_error", "not a URL that can be fetched") from None
        except aiohttp.ClientConnectorError as error:
            raise TransportError(
                message=f"cannot connect to {_host(url)}: {error.os_error}"
            ) from None
        except aiohttp.ClientError as error:
            raise TransportError(message=f"download failed ({type(error).__name__})") from None


@dataclass(frozen=True, slots=True)
class Probed:
    """What a HEAD request says of a file a plan would move: its size if told, or a problem."""

    source_url: str
    size: int | None = None
    problem: MediaFailure | None = None


class MediaProbe:
    """``flowport plan``'s look at the old site: one HEAD per file (redirects followed), never
    a download and never a write; a server that answers HEAD badly is only "unknown"."""

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()
        self._pace = HostPace(self.limits.downloads_per_second)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = _old_site_session(
            aiohttp.ClientTimeout(
                total=self.limits.read_seconds, sock_connect=self.limits.connect_seconds
            ),
            "media plan",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _close(self._session)
        self._session = None

    async def head(self, url: str, kind: MediaKind) -> Probed:
        if self._session is None:
            raise RuntimeError("MediaProbe is used outside its 'async with' block")
        await self._pace.wait(url)
        try:
            async with self._session.head(
                url, allow_redirects=True, max_redirects=self.limits.max_redirects
            ) as response:
                if response.status in (405, 501):
                    return Probed(url)  # a server that does not answer HEAD: unknown
                _check_status(response)
                size, declared = response.content_length, response.content_type.lower()
        except _Refused as refused:
            return Probed(url, problem=MediaFailure(url, refused.kind, refused.detail))
        except (RetriableError, TimeoutError, aiohttp.ClientError):
            return Probed(url)  # unknown: the run will try, with its retries
        limit = self.limits.max_bytes(kind)
        if size is not None and size > limit:
            oversized = _too_large(size, limit)
            return Probed(url, size, MediaFailure(url, oversized.kind, oversized.detail))
        if kind is MediaKind.IMAGE and declared == "text/html":
            detail = f"the answer of {url} is an HTML page (by its Content-Type)"
            return Probed(url, size, MediaFailure(url, "not_an_image", detail))
        return Probed(url, size)


class HostPace:
    """At most ``per_second`` requests a second to each host of the old site. The site being
    moved is often someone's modest live server, behind a firewall that takes a migration's
    burst of downloads for an attack; its pace is the job's to set (``[assets]
    downloads_per_second``), not the concurrency's. A leaky bucket per host (aiolimiter's):
    a short burst of up to one second's worth, then the steady pace."""

    def __init__(self, per_second: float) -> None:
        # aiolimiter wants a bucket of at least one request: a slower pace is a longer period.
        self._period = max(1.0, 1.0 / per_second)
        self._per_period = per_second * self._period
        self._limiters: dict[str, AsyncLimiter] = {}

    async def wait(self, url: str) -> None:
        host = _host(url)
        limiter = self._limiters.get(host)
        if limiter is None:
            limiter = self._limiters[host] = AsyncLimiter(self._per_period, self._period)
        await limiter.acquire()


def _old_site_session(timeout: aiohttp.ClientTimeout, purpose: str) -> aiohttp.ClientSession:
    """A session for the old site's files (the uploader's and the plan's probe): no token."""
    return aiohttp.ClientSession(
        timeout=timeout,
        headers={"User-Agent": f"flowport/{__version__} ({purpose})"},
        raise_for_status=False,
    )


async def _close(session: aiohttp.ClientSession | None) -> None:
    if session is not None:
        await session.close()


def _check_status(response: aiohttp.ClientResponse) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise _Refused("not_found", f"HTTP {status} from {response.url}")
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimited(
            status=status, message="the source host is rate limiting", retry_after=retry_after
        )
    if status == 408 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise ServerError(
            status=status, message=f"HTTP {status} from the source", retry_after=retry_after
        )
    raise _Refused("http_error", f"HTTP {status} from {response.url}")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # Streamed: a file past the limit is dropped after limit + 1 bytes, never read whole.
    received = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        received.extend(chunk)
        if len(received) > limit:
            raise _too_large(None, limit)
    return bytes(received)


def _too_large(size: int | None, limit: int) -> _Refused:
    told = f"{size:,} bytes" if size is not None else "more bytes"
    return _Refused("too_large", f"{told} than the {limit:,} bytes allowed")


def _sniff(data: bytes) -> str | None:
    head = data[:1024]
    for signature, content_type in _SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "image/avif" if brand in (b"avif", b"avis") else f"image/heif ({brand!r})"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if any(marker in text for marker in _HTML_MARKERS):
        return "text/html"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "image/svg+xml"
    return None


def _identify(download: _Download, kind: MediaKind) -> str:
    """The file's type, judged by its bytes first; refused if Webflow would not take it."""
    sniffed = _sniff(download.data)
    declared = download.declared_type.lower()
    if kind is MediaKind.IMAGE:
        if sniffed in IMAGE_TYPES:
            return sniffed
        if sniffed is not None and sniffed.startswith("image/"):
            raise _Refused("unsupported_type", f"{sniffed} is not a type Webflow's images take")
        what = sniffed or declared or "unknown content"
        where = f" (the answer of {download.final_url})"
        raise _Refused("not_an_image", f"{what}{where} is not an image")
    return _file_type(download, sniffed, declared)


_CONTAINERS = ("application/zip", "application/x-ole-storage")
_TEXT_TYPES = ("text/plain", "text/csv")


def _file_type(download: _Download, sniffed: str | None, declared: str) -> str:
    named = _extension_type(download.final_url)
    if sniffed == "text/html":
        raise _Refused("unsupported_type", f"an HTML page (from {download.final_url}), not a file")
    if sniffed in _CONTAINERS:
        # Office documents are zip or OLE containers: the declared type or the name says which.
        for candidate in (declared, named):
            if candidate in FILE_TYPES and candidate not in IMAGE_TYPES:
                return candidate
        if sniffed in FILE_TYPES:
            return sniffed
    elif sniffed in FILE_TYPES:
        return sniffed
    elif sniffed is None:
        # No signature: plain text, if the server or the name says so.
        for candidate in (declared, named):
            if candidate in _TEXT_TYPES:
                return candidate
    what = sniffed or declared or "unknown content"
    raise _Refused("unsupported_type", f"{what} is not a type Webflow's assets take")


def is_file_url(url: str) -> bool:
    """Whether a link's URL names a file Webflow's assets take (by its extension): how rich
    text's ``<a href>`` to a PDF or an image is told from a link to a page."""
    return _extension_type(url) is not None


def _extension_type(url: str) -> str | None:
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower().lstrip(".")
    return _EXTENSION_TYPES.get(suffix)


#: Hex digits of the content's SHA-256 in every asset's file name: 48 bits, unique per site.
MARKER_DIGITS = 12
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _file_name(url: str, content_type: str, sha256: str) -> str:
    """The asset's file name: the URL's, made safe, marked with the first hex digits of the
    content's SHA-256 (so a killed run's create is found again by its exact name), with the
    extension of the type it holds."""
    raw = PurePosixPath(unquote(urlsplit(url).path)).name
    stem, extension = PurePosixPath(raw).stem, PurePosixPath(raw).suffix.lower().lstrip(".")
    stem = _UNSAFE.sub("-", stem).strip(" .-") or "file"
    wanted = FILE_TYPES[content_type]
    if _EXTENSION_TYPES.get(extension) != content_type:
        extension = wanted
    marker = f"-{sha256[:MARKER_DIGITS]}"
    # Webflow: "File names must be less than 100 characters".
    return f"{stem[: 98 - len(extension) - len(marker)]}{marker}.{extension}"


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _rejection_kind(code: str) -> FailureKind:
    if code == "BadDigest":
        return "checksum_mismatch"
    if code == "EntityTooLarge":
        return "too_large"
    return "rejected"


def _record(intent: AssetIntent, asset_id: str, hosted_url: str) -> AssetRecord:
    return AssetRecord(
        sha256=intent.sha256,
        md5=intent.md5,
        source_url=intent.source_url,
        asset_id=asset_id,
        hosted_url=hosted_url,
        file_name=intent.file_name,
        content_type=intent.content_type,
        size=intent.size,
    )


def _uploaded(url: str, record: AssetRecord, *, deduplicated: bool) -> Uploaded:
    return Uploaded(
        source_url=url,
        asset_id=record.asset_id,
        hosted_url=record.hosted_url,
        sha256=record.sha256,
        size=record.size,
        content_type=record.content_type,
        deduplicated=deduplicated,
    )
