"""The old site's pages and their new Webflow paths: built before a run maps anything.

One map serves two uses: ``richtext_wordpress`` rewrites links to the old site through it while
mapping (:class:`flowport.mappings.LinkMap`), and the redirects CSV is written from the same
entries at the end of the run (``[run] redirects_csv``), so a link and its redirect never
disagree. ``flowport init wordpress`` writes its first CSV from it too.

Why a pre-scan: a post links to posts that come later in the source, so the map must be whole
before the first body is mapped. The scan reads every collection's source once (whole, even
an incremental one: a new post may be linked from anywhere, and an old one may be linked from
a new post) and maps only what a path needs (name, slug, status), not the bodies. Slugs are the
ones the run will write: a key the log already knows keeps its slug, a new key gets the first
of ``slug``, ``slug-2``... that no other key holds in the log or in this scan, as the run's own
claims do. A nightly run with a new post therefore links to it and adds its redirect row.

Old URLs come from the records themselves: a post's ``link``; a WXR term's
``/category/<parents>/<slug>/`` or ``/tag/<slug>/``; a WXR author's ``/author/<slug>/``;
whatever ``link`` a REST term or user has. Ids give the shortlinks WordPress answers
(``?p=``, ``?page_id=``, ``?cat=``, ``?tag=``, ``?author=``).
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flowport.base.errors import ConfigError
from flowport.connectors import SourceRecord
from flowport.mappings import LinkMap, MappedItem, compile_mapping, slug_with_suffix
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import Job

__all__ = [
    "REDIRECTS_HEADER",
    "LinkEntry",
    "SiteLinks",
    "collect_links",
    "old_path",
    "write_redirects",
    "write_redirects_csv",
]

#: Webflow's 301 redirect import (Site settings > Publishing > 301 redirects > Import) takes a
#: two-column CSV headed ``source,target``: old path, then new path or URL. That is the header
#: Webflow's own export of a site's redirects carries (see a public migration brief that read
#: one, github "MYGRATR-AUDIT-1 Site Audit Agent", step 1: "two columns — source,target",
#: all 301); Webflow University's "Set 301 redirects" says old paths are relative, starting /.
REDIRECTS_HEADER = ("source", "target")
#: Records looked up in the checkpoint log at a time.
_CHUNK = 500
_CATEGORY_BASE = "category"
_TAG_BASE = "tag"
_AUTHOR_BASE = "author"


@dataclass(frozen=True, slots=True)
class LinkEntry:
    collection: str
    key: str
    #: The old path as Webflow's redirect import matches it (percent-encoded, site path kept).
    old_path: str
    new_path: str
    #: Written live by this job (not a draft, not a draft-mode run): a redirect row is due.
    live: bool


@dataclass(slots=True)
class SiteLinks:
    link_map: LinkMap
    entries: list[LinkEntry] = field(default_factory=list)
    #: collection -> records without an entry, by reason.
    left_out: dict[str, Counter[str]] = field(default_factory=dict)

    def leave_out(self, collection: str, reason: str) -> None:
        self.left_out.setdefault(collection, Counter())[reason] += 1

    def redirect_rows(self) -> list[LinkEntry]:
        """Live entries, each old path once, the front page and unmoved paths left out."""
        seen: set[str] = set()
        rows: list[LinkEntry] = []
        for entry in self.entries:
            if not entry.live or entry.old_path in seen or entry.old_path in ("", "/"):
                continue
            if entry.old_path.rstrip("/") == entry.new_path:
                continue
            seen.add(entry.old_path)
            rows.append(entry)
        return rows


class _AnyReference:
    # Paths need slugs and statuses, not ids: every reference resolves to a placeholder.
    def webflow_id(self, collection: str, source_key: str) -> str | None:
        return "0" * 24


class _ScanSlugs:
    """The slug the run will give each key (see the module docstring)."""

    def __init__(self, checkpoint: CheckpointLog | None, collection: str) -> None:
        self.checkpoint = checkpoint
        self.collection = collection
        self.known: dict[str, str] = {}
        self.held: dict[str, str] = {}

    def remember(self, keys: list[str]) -> None:
        if self.checkpoint is None:
            return
        states = self.checkpoint.lookup(self.collection, keys)
        self.known = {key: s.slug for key, s in states.items() if s.slug}

    def claim(self, source_key: str, wanted: str) -> str:
        kept = self.known.get(source_key)
        if kept is not None:  # as the run's claims: a key keeps the slug it has
            self.held[kept] = source_key
            return kept
        candidate, number = wanted, 1
        while not self._free(candidate, source_key):
            number += 1
            candidate = slug_with_suffix(wanted, number)
        self.held[candidate] = source_key
        return candidate

    def _free(self, slug: str, key: str) -> bool:
        holder = self.held.get(slug)
        if holder is not None:
            return holder == key
        if self.checkpoint is None:
            return True
        logged = self.checkpoint.slug_holders(self.collection, slug)[1]
        return logged is None or logged == key


def old_path(url: str, site_url: str) -> str | None:
    """The path (and query, for plain permalinks) of an old URL on the old site's host, as
    Webflow's redirect import matches it; None for another host."""
    parts = urlsplit(url.strip())
    if parts.scheme and parts.netloc:
        site = urlsplit(site_url)
        host, site_host = (parts.hostname or "").lower(), (site.hostname or "").lower()
        if host.removeprefix("www.") != site_host.removeprefix("www."):
            return None
    # Some exports double a slash ("https://site.example//greek/..."); WordPress serves the
    # single-slash path, which is what visitors and search engines hold.
    path = re.sub(r"/{2,}", "/", "/" + (parts.path or ""))
    # Webflow matches the path as typed; keep WordPress's percent-encoding, encode anything raw.
    path = quote(path, safe="/%-_.~!$&'()*+,;=:@")
    if parts.query:
        path += "?" + quote(parts.query, safe="=&%-_.~")
    return path


def _site_path(site_url: str) -> str:
    return urlsplit(site_url).path.rstrip("/")


def _encoded(slug: str) -> str:
    return quote(slug, safe="-_.~").lower()


def _term_path(slug: str, parents: Mapping[str, str | None], base: str) -> str:
    slugs, seen = [slug], {slug}
    parent = parents.get(slug)
    while parent and parent not in seen:
        slugs.append(parent)
        seen.add(parent)
        parent = parents.get(parent)
    return f"/{base}/" + "/".join(_encoded(s) for s in reversed(slugs)) + "/"


@dataclass(frozen=True, slots=True)
class _Found:
    key: str
    link: str | None  # the record's own old URL, if it has one
    term: tuple[str, str] | None  # (taxonomy, slug) of a WXR term, whose path needs parents
    ids: tuple[tuple[str, str], ...]
    new_path: str
    live: bool


def _shortlinks(fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    ident = fields.get("id")
    if "taxonomy" in fields:
        taxonomy = fields["taxonomy"]
        if taxonomy == "post_tag" and fields.get("slug"):
            return (("post_tag", str(fields["slug"])),)
        return (("category", str(ident)),) if taxonomy == "category" and ident else ()
    if "login" in fields:
        return (("author", str(ident)),) if ident else ()
    if "status" in fields and "slug" in fields and ident:  # a post (a comment has no slug)
        return (("post", str(ident)),)
    return ()


def _found(record: SourceRecord, new_path: str, live: bool) -> _Found:
    fields = record.fields
    link = fields.get("link")
    link = link.strip() if isinstance(link, str) and link.strip() else None
    if link is not None and "#" in link:
        link = None  # a place in another page (a comment's #comment-2): no page of its own
    term = None
    if link is None and fields.get("taxonomy") in ("category", "post_tag") and fields.get("slug"):
        term = (str(fields["taxonomy"]), str(fields["slug"]))
    if link is None and "login" in fields and fields.get("slug"):
        link = f"/{_AUTHOR_BASE}/{_encoded(str(fields['slug']))}/"
    return _Found(record.key, link, term, _shortlinks(fields), new_path, live)


async def _chunks(job: Job, name: str, links: SiteLinks) -> AsyncIterator[list[SourceRecord]]:
    chunk: list[SourceRecord] = []
    source = job.open_source(name)
    async with aclosing(source.records()) as stream:
        async for item in stream:
            if not isinstance(item, SourceRecord):
                links.leave_out(name, "unreadable in the source")
                continue
            chunk.append(item)
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _scan_collection(
    job: Job, name: str, checkpoint: CheckpointLog | None, links: SiteLinks
) -> tuple[list[_Found], dict[str, str | None]]:
    collection = job.collections[name]
    mapping = collection.mapping()
    wanted = {"name", "slug", mapping.slug_from or "name"}
    # Only what a path needs: bodies are not converted twice.
    fields = {slug: spec for slug, spec in mapping.fields.items() if slug in wanted}
    slugs = _ScanSlugs(checkpoint, name)
    mapper = compile_mapping(
        mapping.model_copy(update={"fields": fields}),
        collection.planned_schema(name),
        collection=name,
        resolver=_AnyReference(),
        slugs=slugs,
    )
    base = f"/{collection.target_slug()}/"
    found: list[_Found] = []
    parents: dict[str, str | None] = {}
    async for chunk in _chunks(job, name, links):
        slugs.remember([record.key for record in chunk])
        for record in chunk:
            if record.fields.get("taxonomy") == "category":
                parent = record.fields.get("parent")
                parents[str(record.fields.get("slug"))] = str(parent) if parent else None
            outcome = mapper.map(record)
            if not isinstance(outcome, MappedItem):
                links.leave_out(name, "mapping failed" if hasattr(outcome, "field") else "skipped")
                continue
            live = outcome.status != "draft" and job.run.mode != "draft"
            slug = str(outcome.field_data.get("slug") or "")
            found.append(_found(record, base + slug, live))
    return found, parents


async def collect_links(
    job: Job, site_url: str, checkpoint: CheckpointLog | None = None
) -> SiteLinks:
    """Every record of the job whose old page can be named, and its new Webflow path."""
    try:
        links = SiteLinks(LinkMap(site_url))
    except ValueError:
        raise ConfigError(
            f"{site_url!r} is not an http(s) address",
            key="run.old_site",
            fix='old_site = "https://blog.example.com"',
        ) from None
    prefix = _site_path(site_url)
    for name in job.collections:
        found, parents = await _scan_collection(job, name, checkpoint, links)
        for item in found:
            if item.term is not None:
                taxonomy, slug = item.term
                base = _CATEGORY_BASE if taxonomy == "category" else _TAG_BASE
                url: str | None = prefix + _term_path(
                    slug, parents if taxonomy == "category" else {}, base
                )
            elif item.link is not None and item.link.startswith("/"):
                url = prefix + item.link
            else:
                url = item.link
            path = old_path(url, site_url) if url else None
            if path is None and not item.ids:
                links.leave_out(name, "no old URL on the site")
                continue
            links.link_map.add(url or "", item.new_path, item.ids)
            if path is not None:
                links.entries.append(LinkEntry(name, item.key, path, item.new_path, item.live))
    return links


def write_redirects(path: Path, links: SiteLinks, checkpoint: CheckpointLog | None = None) -> int:
    """Write the redirects CSV atomically (a temporary file beside it, then a rename), one row
    per live entry; with ``checkpoint``, only items the log holds as written (``done``), under
    the slug the log holds. Returns the number of rows."""
    rows = links.redirect_rows()
    if checkpoint is not None:
        rows = _written(rows, checkpoint)
    write_redirects_csv(path, [(row.old_path, row.new_path) for row in rows])
    return len(rows)


def write_redirects_csv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    """Webflow's 301 import file (:data:`REDIRECTS_HEADER`, then old path, new path per row),
    replaced atomically: a reader never sees half a file, a crash leaves the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(REDIRECTS_HEADER)
            writer.writerows(rows)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _written(rows: list[LinkEntry], checkpoint: CheckpointLog) -> list[LinkEntry]:
    by_collection: dict[str, list[LinkEntry]] = {}
    for row in rows:
        by_collection.setdefault(row.collection, []).append(row)
    kept: list[LinkEntry] = []
    for name, entries in by_collection.items():
        for start in range(0, len(entries), _CHUNK):
            part = entries[start : start + _CHUNK]
            states = checkpoint.lookup(name, [row.key for row in part])
            for row in part:
                state = states.get(row.key)
                if state is None or state.state != "done" or not state.webflow_id:
                    continue
                new = row.new_path
                if state.slug:
                    new = new.rsplit("/", 1)[0] + "/" + state.slug
                kept.append(LinkEntry(name, row.key, row.old_path, new, row.live))
    order = {(row.collection, row.key): i for i, row in enumerate(rows)}
    kept.sort(key=lambda row: order[(row.collection, row.key)])
    return kept
