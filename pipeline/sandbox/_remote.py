"""Fetching the files that Image, MultiImage and File field values name by URL, as Webflow does.

Webflow's "Field Types & Item Values" reference (developers.webflow.com/data/reference/
field-types-item-values): Image and Multi-Image "Images must be hosted on a publicly accessible URL
to be uploaded via the API. The maximum file size for images is 4MB"; File "Stores a file
reference. You can upload a new file from a public URL or use an existing" one (by ``fileId``).
So Webflow fetches the URL itself and keeps its own copy; an item's stored value is
``{fileId, url: <Webflow-hosted url>, alt}``.

The server fetches every URL of a request before the synchronous core sees the request: on the
event loop (aiohttp, never blocking it), concurrently, with a timeout per file and the size bound
checked while streaming (a file over the limit is never held whole). What is fetched is judged
by its bytes (an HTML page behind an image URL is not an image). Loopback and private addresses
are allowed when ``file_fetch_loopback`` is on (the sandbox's default: tests and rehearsals serve
their "old site" on 127.0.0.1); real Webflow only reaches public URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiohttp

from flowport.pipeline.sandbox._config import SandboxConfig

__all__ = ["FetchFailure", "FetchedFile", "FileKind", "RemoteFiles", "Wanted", "sniff"]

FileKind = Literal["image", "file"]
#: One file a request needs: what the field takes, and the URL.
Wanted = tuple[FileKind, str]

_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
)
_FILE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword"),
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/x-icon": "ico",
    "image/webp": "webp", "image/avif": "avif", "image/svg+xml": "svg",
    "application/pdf": "pdf", "application/zip": "zip", "application/msword": "doc",
    "text/plain": "txt", "text/csv": "csv",
}  # fmt: skip
_NAME_JUNK = re.compile(r"[/\\\x00-\x1f]+")
_CHUNK = 64 * 1024
_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class FetchedFile:
    data: bytes
    content_type: str
    #: The file name Webflow keeps: the URL's last segment (decoded), after ``<fileId>_``.
    file_name: str
    md5: str


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Why Webflow could not take the file: the ``description`` of the 400's detail."""

    reason: str


FetchResult = FetchedFile | FetchFailure


def sniff(data: bytes) -> str | None:
    """The type the bytes say, or None (plain text, or unknown)."""
    head = data[:512]
    for signature, content_type in (*_IMAGE_SIGNATURES, *_FILE_SIGNATURES):
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "image/avif"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if any(marker in text for marker in _HTML_MARKERS):
        return "text/html"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "image/svg+xml"
    return None


def _judge(kind: FileKind, data: bytes, declared: str) -> str | FetchFailure:
    """The hosted file's content type, or why the field refuses it."""
    sniffed = sniff(data)
    if kind == "image":
        if sniffed is not None and sniffed.startswith("image/"):
            return sniffed
        return FetchFailure(f"not an image ({sniffed or declared or 'unknown content'})")
    if sniffed == "text/html":
        return FetchFailure("not a file: the URL answers an HTML page")
    if sniffed is not None:
        return sniffed
    if declared in ("text/plain", "text/csv"):
        return declared
    return FetchFailure(f"not a file type Webflow takes ({declared or 'unknown content'})")


def _file_name(url: str, content_type: str) -> str:
    raw = PurePosixPath(unquote(urlsplit(url).path)).name
    name = _NAME_JUNK.sub("-", raw).strip() or "file"
    extension = _EXTENSIONS.get(content_type, "bin")
    if "." not in name:
        name = f"{name}.{extension}"
    if len(name) >= 100:  # the Assets API's rule: "File names must be less than 100 characters"
        stem, _, suffix = name.rpartition(".")
        name = f"{stem[: 98 - len(suffix)]}.{suffix}"
    return name


class RemoteFiles:
    """The server's fetcher: one client session, opened with the server and closed with it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.config.file_fetch_timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        return self._session

    def limit(self, kind: FileKind) -> int:
        if kind == "image":
            return self.config.asset_image_max_bytes
        return self.config.asset_file_max_bytes

    async def fetch_all(self, wanted: Iterable[Wanted]) -> dict[Wanted, FetchResult]:
        """Every wanted file, at most a few at a time; a failure is an answer, not an error."""
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return {}
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(entry: Wanted) -> FetchResult:
            async with gate:
                return await self.fetch(*entry)

        results = await asyncio.gather(*(one(entry) for entry in unique))
        return dict(zip(unique, results, strict=True))

    async def fetch(self, kind: FileKind, url: str) -> FetchResult:
        refused = await self._refused_host(url)
        if refused is not None:
            return refused
        try:
            return await self._download(kind, url)
        except TimeoutError:
            seconds = self.config.file_fetch_timeout_seconds
            return FetchFailure(f"the file could not be fetched in {seconds:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as problem:
            return FetchFailure(f"the file could not be fetched: {type(problem).__name__}")

    async def _download(self, kind: FileKind, url: str) -> FetchResult:
        limit = self.limit(kind)
        async with self._client().get(url, allow_redirects=True, max_redirects=5) as response:
            if response.status >= 400:
                return FetchFailure(f"the file could not be fetched: HTTP {response.status}")
            if response.content_length is not None and response.content_length > limit:
                return FetchFailure(_too_large(limit))
            kept = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                kept.extend(chunk)
                if len(kept) > limit:
                    return FetchFailure(_too_large(limit))
            declared = response.content_type.lower()
            final_url = str(response.url)
        data = bytes(kept)
        if not data:
            return FetchFailure("the file is empty")
        judged = _judge(kind, data, declared)
        if isinstance(judged, FetchFailure):
            return judged
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return FetchedFile(data, judged, _file_name(final_url, judged), md5)

    async def _refused_host(self, url: str) -> FetchFailure | None:
        """Real Webflow reaches only public URLs; the sandbox also loopback ones if allowed."""
        if self.config.file_fetch_loopback:
            return None
        host = urlsplit(url).hostname or ""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return FetchFailure(f"the file's host {host!r} does not resolve")
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                return FetchFailure(f"not a publicly accessible URL ({host} is {address})")
        return None


def _too_large(limit: int) -> str:
    return f"the file is larger than {limit:,} bytes, the most Webflow takes"
