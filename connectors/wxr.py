"""WordPress eXtended RSS (WXR) export files, read as a stream.

The file is read twice with ``lxml.etree.iterparse``, each element cleared once handled, so memory
stays flat whatever the file's size:

1. a scan checks the whole file is well-formed XML from a WordPress export before a single
   record is yielded, and collects the few things a record may need from elsewhere in the file:
   attachment id → (url, alt text), because a post's ``_thumbnail_id`` may point at an attachment
   exported after it; the ``<wp:author>`` list; the ``dc:creator`` logins (authors of WXR 1.0
   files, which have no author list). Only those small maps are kept.
2. the read yields records of one ``kind``.

:func:`scan_export` is that first pass on its own: ``flowport init wordpress FILE`` learns a
site from it (post types, terms, the channel's address, each item's link), so the preset and
the run read an export with the same parser, the same refusals and the same repair.

Safety: a document whose DOCTYPE declares entities or names an external DTD (billion laughs,
external entities) is refused from its prolog's bytes before any parser reads it
(:mod:`flowport.connectors._xml_prolog`), whatever libxml2 is installed; the parser then loads
no DTD, resolves no entity, touches no network and accepts no huge text node.

Recovery: one kind of breakage is repaired, because its meaning is certain: a bare ``&`` (an
unescaped query string in a URL, common in real exports) becomes ``&amp;``, and an HTML named
entity (``&nbsp;``) its character; text inside CDATA sections, comments and processing
instructions is never touched. The repair is logged as a warning and listed in
:attr:`WxrSource.notes`. Every other malformation stops the read with the line and the reason.

Duplicates: when a post id (or a term's ``taxonomy:slug``, or an author's slug) appears again, the
first occurrence is the record; a later identical one is dropped silently, a later different one
becomes a :class:`RecordError` keyed ``"<key>~dup<n>"`` (n = 2 for the second occurrence), so
nothing is lost and keys stay unique. The theme unit test exports 18 menu items twice, once per
menu they belong to.
"""

from __future__ import annotations

import hashlib
import html.entities
import json
import logging
import mimetypes
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, Final, Literal

import anyio.to_thread
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowport.base.errors import SourceError
from flowport.connectors import RecordError, SourceItem, SourceRecord
from flowport.connectors._xml_prolog import PROLOG_LIMIT, hostile_prolog
from flowport.connectors.wordpress_common import (
    AuthorRef,
    CommentRecord,
    FeaturedImage,
    MediaRecord,
    PostRecord,
    TermRecord,
    TermRef,
    UserRecord,
    add_meta,
    comment_on,
    decode_slug,
    decode_text,
    gmt_iso,
    is_at_or_after,
    local_iso,
    post_key,
    since_for_read,
    taxonomy_of,
    term_key,
    user_slug,
)

__all__ = [
    "ExportItem",
    "ExportScan",
    "ItemObserver",
    "WxrSource",
    "WxrSourceConfig",
    "scan_export",
]

log = logging.getLogger("flowport.connectors.wxr")

_BATCH = 200
_CHUNK = 64 * 1024

_WP_NS = re.compile(r"^https?://wordpress\.org/export/1\.\d+/$")
_EXCERPT_NS = re.compile(r"^https?://wordpress\.org/export/1\.\d+/excerpt/$")
_FAMILY_BY_NS = {
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://purl.org/dc/elements/1.1/": "dc",
    "": "",
}
_KIND = re.compile(r"^(category|tag|author|term:[a-z0-9_-]+|[a-z0-9_-]+)$")


class WxrSourceConfig(BaseModel):
    """A WordPress export file (Tools → Export), one kind of record per source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["wxr"] = "wxr"
    path: Path = Field(description="The WXR file; relative paths start at the job file's folder.")
    kind: str = Field(
        default="post",
        description=(
            "What to read: a post type (post, page, attachment, nav_menu_item, a custom one), "
            "'category', 'tag', 'term:<taxonomy>', 'author' or 'comment' (every item's "
            "comments, without e-mail or IP addresses)."
        ),
    )
    repair_bare_ampersands: bool = Field(
        default=True,
        description=(
            "Escape bare '&' (and decode HTML named entities) outside CDATA when the file is "
            "otherwise unreadable; the repair is logged. False rejects such files."
        ),
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if not _KIND.match(value):
            raise ValueError(
                "kind must be a post type (post, page, attachment, ...), 'category', 'tag', "
                f"'term:<taxonomy>' or 'author', not {value!r}"
            )
        return value

    def open(self, *, base_dir: Path, env: Mapping[str, str]) -> WxrSource:
        path = self.path if self.path.is_absolute() else base_dir / self.path
        return WxrSource(path, kind=self.kind, repair=self.repair_bare_ampersands)


# ----------------------------------------------------------------------------------------------
# The byte-level repair of bare ampersands


_REF = re.compile(rb"&(?:#[0-9]+|#x[0-9A-Fa-f]+|([A-Za-z_:][-A-Za-z0-9_.:]*));")
_XML_ENTITIES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})
_LONGEST_REF = 40
_OPENERS = ((b"<![CDATA[", b"]]>"), (b"<!--", b"-->"), (b"<?", b"?>"))
_TEXT_SPECIAL = re.compile(rb"[<&]")


class _AmpersandRepair:
    """A binary file wrapper that escapes bare ``&`` in markup, never inside CDATA or comments."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._pending = b""
        self._ready = bytearray()
        self._closer: bytes | None = None
        self._eof = False
        self._lines_done = 1
        self.repairs = 0
        self.first_line: int | None = None

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._ready) < size) and not (self._eof and not self._pending):
            self._fill()
        if size < 0:
            size = len(self._ready)
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def _repaired(self, out: bytearray, replacement: bytes) -> None:
        self.repairs += 1
        if self.first_line is None:
            self.first_line = self._lines_done + out.count(b"\n")
        out += replacement

    def _fill(self) -> None:
        data = self._raw.read(_CHUNK)
        if not data:
            self._eof = True
        buf = self._pending + data
        out = bytearray()
        i, n = 0, len(buf)
        while i < n:
            if self._closer is not None:
                end = buf.find(self._closer, i)
                if end >= 0:
                    out += buf[i : end + len(self._closer)]
                    i = end + len(self._closer)
                    self._closer = None
                    continue
                # Keep what could be the start of the closer for the next chunk.
                cut = n if self._eof else max(i, n - len(self._closer) + 1)
                out += buf[i:cut]
                i = cut
                break
            match = _TEXT_SPECIAL.search(buf, i)
            if match is None:
                out += buf[i:]
                i = n
                break
            j = match.start()
            out += buf[i:j]
            i = j
            if not self._eof and n - i < _LONGEST_REF:
                break  # too close to the chunk's end to decide; wait for more bytes
            if buf[i : i + 1] == b"<":
                for opener, closer in _OPENERS:
                    if buf.startswith(opener, i):
                        out += opener
                        i += len(opener)
                        self._closer = closer
                        break
                else:
                    out += b"<"
                    i += 1
                continue
            ref = _REF.match(buf, i)
            if ref is None:
                self._repaired(out, b"&amp;")
                i += 1
                continue
            name = ref.group(1)
            if name is None or name in _XML_ENTITIES:
                out += ref.group()
            else:
                char = html.entities.html5.get(name.decode("ascii") + ";")
                if char is None:
                    self._repaired(out, b"&amp;" + ref.group()[1:])
                else:
                    self._repaired(out, "".join(f"&#{ord(c)};" for c in char).encode("ascii"))
            i = ref.end()
        self._pending = buf[i:]
        self._lines_done += out.count(b"\n")
        self._ready += out


# ----------------------------------------------------------------------------------------------
# Streaming the channel's children

_REPAIRABLE = frozenset(
    {
        etree.ErrorTypes.ERR_ENTITYREF_SEMICOL_MISSING,
        etree.ErrorTypes.ERR_NAME_REQUIRED,
        etree.ErrorTypes.ERR_UNDECLARED_ENTITY,
    }
)


class _NeedsRepair(Exception):
    def __init__(self, error: SourceError) -> None:
        super().__init__(str(error))
        self.error = error


_family_cache: dict[str, str] = {}


def _name(element: etree._Element) -> tuple[str, str]:
    """(family, local name): family is wp, excerpt, content, dc, '' (no namespace) or other."""
    tag: object = element.tag  # comments and PIs have a function here, whatever the stubs say
    if not isinstance(tag, str):
        return ("other", "")
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
    else:
        namespace, local = "", tag
    family = _family_cache.get(namespace)
    if family is None:
        if _WP_NS.match(namespace):
            family = "wp"
        elif _EXCERPT_NS.match(namespace):
            family = "excerpt"
        else:
            family = _FAMILY_BY_NS.get(namespace, "other")
        _family_cache[namespace] = family
    return family, local


def _text(element: etree._Element) -> str:
    return "".join(str(part) for part in element.itertext())


def _markup(element: etree._Element) -> str:
    # Content is normally one CDATA text; should a file carry inline XHTML instead, keep its tags.
    if len(element) == 0:
        return element.text or ""
    parts = [element.text or ""]
    parts.extend(etree.tostring(child, encoding="unicode", with_tail=True) for child in element)
    return "".join(parts)


def refuse_hostile_prolog(raw: IO[bytes], label: str) -> None:
    """Refuse a DOCTYPE that declares entities or names an external DTD, from the bytes before
    the root element, before any parser reads the file; ``raw`` is left at its start."""
    head = raw.read(PROLOG_LIMIT)
    complete = len(head) < PROLOG_LIMIT
    raw.seek(0)
    refused = hostile_prolog(head, complete=complete)
    if refused is not None:
        raise SourceError(
            f"{label}: line {refused.line}: {refused.reason}; a WordPress export never has "
            "one, and it is how entity-expansion and external-entity attacks work: refused"
        )


def _syntax_error(label: str, exc: etree.XMLSyntaxError) -> SourceError:
    line = exc.lineno or (exc.position[0] if exc.position else 0)
    message = re.sub(r", line \d+, column \d+$", "", str(exc.msg or exc))
    if line <= 0:
        return SourceError(f"{label}: not XML: {message} (empty file?)")
    return SourceError(f"{label}: line {line}: not well-formed XML: {message}")


@dataclass
class _Parse:
    path: Path
    label: str
    repair: bool
    repairs: int = 0
    first_repair_line: int | None = None
    wp_elements: int = 0

    def children(self) -> Iterator[tuple[str, str, etree._Element]]:
        """The children of ``<channel>`` in the wp namespace or in none (items, ``<link>``,
        ``<title>``): (family, local name, element), cleared after use."""
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot open: {exc.strerror or exc}") from None
        with raw:
            refuse_hostile_prolog(raw, self.label)
            reader = _AmpersandRepair(raw) if self.repair else raw
            context = etree.iterparse(
                reader,
                events=("start", "end"),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_pis=True,
            )
            depth = 0
            in_channel = False
            try:
                for event, element in context:
                    if event == "start":
                        depth += 1
                        if depth == 2:
                            in_channel = _name(element)[1] == "channel"
                        elif self.wp_elements == 0 and _name(element)[0] == "wp":
                            self.wp_elements += 1
                        continue
                    if depth == 3:
                        family, local = _name(element)
                        if in_channel and (family in ("wp", "") or local == "item"):
                            yield family, local, element
                        element.clear(keep_tail=False)
                        parent = element.getparent()
                        if parent is not None:
                            while element.getprevious() is not None:
                                del parent[0]
                    depth -= 1
            except etree.XMLSyntaxError as exc:
                error = _syntax_error(self.label, exc)
                code: object = getattr(exc, "code", None)
                if not self.repair and code in _REPAIRABLE:
                    raise _NeedsRepair(error) from None
                raise error from None
            if isinstance(reader, _AmpersandRepair):
                self.repairs = reader.repairs
                self.first_repair_line = reader.first_line


# ----------------------------------------------------------------------------------------------
# Elements → the common record shape


@dataclass(frozen=True, slots=True)
class _Author:
    id: int | None
    login: str
    name: str
    email: str | None
    first_name: str | None
    last_name: str | None


@dataclass
class ExportScan:
    attachments: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    authors: dict[str, _Author] = field(default_factory=dict)
    creators: list[str] = field(default_factory=list)
    version: str | None = None
    repaired: bool = False
    repairs: int = 0
    first_repair_line: int | None = None
    #: (taxonomy, slug) -> name of every term an item uses, declared or not.
    item_terms: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (taxonomy, slug) of every term the export declares.
    declared_terms: set[tuple[str, str]] = field(default_factory=set)
    #: Items per post type, repeats included: an upper bound for the records a kind yields.
    post_types: dict[str, int] = field(default_factory=dict)
    #: The channel's own facts, first occurrence: link, title, base_blog_url, base_site_url.
    channel: dict[str, str] = field(default_factory=dict)

    def repair_note(self, label: str) -> str | None:
        if not self.repaired:
            return None
        return (
            f"{label}: not well-formed XML; repaired {self.repairs} bare '&' or HTML "
            f"entities outside CDATA (first on line {self.first_repair_line})"
        )


@dataclass(frozen=True, slots=True)
class ExportItem:
    """What a site scan learns from one ``<item>``: texts as exported (slugs still encoded)."""

    post_type: str
    status: str
    post_id: str
    post_name: str
    post_date: str
    link: str


_CHANNEL_FACTS = frozenset(
    {("", "link"), ("", "title"), ("wp", "base_blog_url"), ("wp", "base_site_url")}
)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _fields(element: etree._Element) -> dict[str, etree._Element]:
    """Children by local name, first occurrence wins (wp namespace and no namespace only)."""
    found: dict[str, etree._Element] = {}
    for child in element:
        family, local = _name(child)
        if family in ("wp", "", "content", "excerpt", "dc"):
            found.setdefault(f"{family}:{local}", child)
    return found


def _get(found: Mapping[str, etree._Element], name: str) -> str | None:
    element = found.get(name)
    return None if element is None else _text(element)


def _meta(
    element: etree._Element, container: str, key_name: str, value_name: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for child in element:
        if _name(child) != ("wp", container):
            continue
        parts = _fields(child)
        key = _get(parts, f"wp:{key_name}")
        if key is None:
            continue
        add_meta(meta, key, _get(parts, f"wp:{value_name}") or "")
    return meta


def _author_of(element: etree._Element) -> _Author | None:
    parts = _fields(element)
    login = _get(parts, "wp:author_login")
    if not login:
        return None
    display = _get(parts, "wp:author_display_name")
    return _Author(
        id=_int(_get(parts, "wp:author_id")),
        login=login.strip(),
        name=decode_text(display) or login.strip(),
        email=_get(parts, "wp:author_email") or None,
        first_name=decode_text(_get(parts, "wp:author_first_name")) or None,
        last_name=decode_text(_get(parts, "wp:author_last_name")) or None,
    )


def _user_record(author: _Author) -> UserRecord:
    return UserRecord(
        id=author.id,
        login=author.login,
        slug=user_slug(author.login),
        name=author.name,
        email=author.email,
        first_name=author.first_name,
        last_name=author.last_name,
        description="",
        link=None,
    )


# (wxr element, slug child, name child, parent child, description child, meta container)
_TERM_ELEMENTS = {
    "category": ("category_nicename", "cat_name", "category_parent", "category_description"),
    "tag": ("tag_slug", "tag_name", None, "tag_description"),
    "term": ("term_slug", "term_name", "term_parent", "term_description"),
}


def _term_record(local: str, element: etree._Element) -> TermRecord | None:
    slug_name, name_name, parent_name, description_name = _TERM_ELEMENTS[local]
    parts = _fields(element)
    if local == "term":
        taxonomy = (_get(parts, "wp:term_taxonomy") or "").strip()
    else:
        taxonomy = "category" if local == "category" else "post_tag"
    slug = (_get(parts, f"wp:{slug_name}") or "").strip()
    if not taxonomy or not slug:
        return None
    parent = _get(parts, f"wp:{parent_name}") if parent_name else None
    return TermRecord(
        id=_int(_get(parts, "wp:term_id")),
        taxonomy=taxonomy_of(taxonomy),
        slug=decode_slug(slug),
        name=decode_text(_get(parts, f"wp:{name_name}")) or decode_slug(slug),
        description=_get(parts, f"wp:{description_name}") or "",
        parent=decode_slug(parent.strip()) if parent and parent.strip() else None,
        link=None,
        meta=_meta(element, "termmeta", "meta_key", "meta_value"),
    )


def _item_terms(element: etree._Element) -> dict[str, list[TermRef]]:
    terms: dict[str, list[TermRef]] = {}
    for child in element:
        if _name(child) != ("", "category"):
            continue
        nicename = child.get("nicename")
        if not nicename:
            continue  # WXR 1.0 repeats each category without attributes; the importer skips those
        taxonomy = taxonomy_of(child.get("domain") or "category")
        refs = terms.setdefault(taxonomy, [])
        slug = decode_slug(nicename)
        if all(ref["slug"] != slug for ref in refs):
            refs.append(TermRef(id=None, slug=slug, name=decode_text(_text(child)) or slug))
    return terms


def _author_ref(login: str | None, scan: ExportScan) -> AuthorRef | None:
    if not login or not login.strip():
        return None
    login = login.strip()
    known = scan.authors.get(login)
    return AuthorRef(
        id=known.id if known else None,
        login=login,
        slug=user_slug(login),
        name=known.name if known else login,
        email=known.email if known else None,
    )


@dataclass(frozen=True, slots=True)
class _Item:
    post_id: int | None
    post_type: str
    fields: PostRecord | MediaRecord | None
    cursor: str | None


def _post_type_of(parts: Mapping[str, etree._Element]) -> str:
    return (_get(parts, "wp:post_type") or "post").strip() or "post"


def _item_record(element: etree._Element, scan: ExportScan) -> _Item:
    parts = _fields(element)
    post_type = _post_type_of(parts)
    post_id = _int(_get(parts, "wp:post_id"))
    guid = (_get(parts, ":guid") or "").strip() or None
    if post_id is None and guid is None:
        return _Item(None, post_type, None, None)
    meta = _meta(element, "postmeta", "meta_key", "meta_value")
    # Exports before WXR 1.2 have no modified date: such a post was last saved when published.
    modified_gmt = gmt_iso(_get(parts, "wp:post_modified_gmt")) or gmt_iso(
        _get(parts, "wp:post_date_gmt")
    )
    title = decode_text(_get(parts, ":title"))
    slug = decode_slug((_get(parts, "wp:post_name") or "").strip())
    status = (_get(parts, "wp:status") or "").strip()
    date = local_iso(_get(parts, "wp:post_date"))
    date_gmt = gmt_iso(_get(parts, "wp:post_date_gmt"))
    link = (_get(parts, ":link") or "").strip() or None
    parent = _int(_get(parts, "wp:post_parent")) or None
    author = _author_ref(_get(parts, "dc:creator"), scan)
    content_element = parts.get("content:encoded")
    content = _markup(content_element) if content_element is not None else ""
    excerpt_element = parts.get("excerpt:encoded")
    excerpt = _markup(excerpt_element) if excerpt_element is not None else ""
    if post_type == "attachment":
        url = (_get(parts, "wp:attachment_url") or "").strip() or guid
        alt = meta.get("_wp_attachment_image_alt")
        media = MediaRecord(
            id=post_id,
            type=post_type,
            title=title,
            slug=slug,
            status=status,
            date=date,
            date_gmt=date_gmt,
            modified_gmt=modified_gmt,
            link=link,
            guid=guid,
            url=url,
            alt=alt if isinstance(alt, str) else "",
            caption=excerpt,
            description=content,
            mime_type=mimetypes.guess_type(url.split("?", 1)[0])[0] if url else None,
            parent=parent,
            author=author,
            meta=meta,
        )
        return _Item(post_id, post_type, media, modified_gmt)
    terms = _item_terms(element)
    thumbnail = meta.get("_thumbnail_id")
    featured: FeaturedImage | None = None
    thumbnail_id = _int(thumbnail) if isinstance(thumbnail, str) else None
    if thumbnail_id:
        url, alt = scan.attachments.get(thumbnail_id, (None, None))
        featured = FeaturedImage(id=thumbnail_id, url=url, alt=alt)
    # The format is its own field (as in REST), not one more taxonomy.
    post_format = terms.pop("post_format", [])
    password = _get(parts, "wp:post_password") or ""
    post = PostRecord(
        id=post_id,
        type=post_type,
        title=title,
        slug=slug,
        status=status,
        date=date,
        date_gmt=date_gmt,
        modified_gmt=modified_gmt,
        content=content,
        excerpt=excerpt,
        content_format="raw",
        author=author,
        categories=terms.pop("category", []),
        tags=terms.pop("post_tag", []),
        terms=terms,
        parent=parent,
        menu_order=_int(_get(parts, "wp:menu_order")) or 0,
        link=link,
        guid=guid,
        featured_image=featured,
        meta=meta,
        sticky=(_get(parts, "wp:is_sticky") or "").strip() == "1",
        password_protected=bool(password),
        format=_post_format(post_format),
        comment_status=(_get(parts, "wp:comment_status") or "").strip() or None,
        ping_status=(_get(parts, "wp:ping_status") or "").strip() or None,
    )
    return _Item(post_id, post_type, post, modified_gmt)


#: WXR's wp:comment_approved, in the REST API's words.
_COMMENT_STATUS: Final = {"1": "approved", "0": "hold", "spam": "spam", "trash": "trash"}


def _comments_of(element: etree._Element, dedup: _Dedup, position: str) -> Iterator[SourceItem]:
    parts = _fields(element)
    post_id = _int(_get(parts, "wp:post_id"))
    post_type = _post_type_of(parts)
    link = (_get(parts, ":link") or "").strip() or None
    for child in element:
        if _name(child) != ("wp", "comment"):
            continue
        found = _fields(child)
        comment_id = _int(_get(found, "wp:comment_id"))
        where = f"line {child.sourceline}"
        if comment_id is None:
            yield RecordError(f"comment@{where}", "comment without a wp:comment_id", where)
            continue
        approved = (_get(found, "wp:comment_approved") or "").strip()
        record = CommentRecord(
            id=comment_id,
            post=post_id,
            post_type=post_type,
            on=comment_on(post_id, post_type),
            parent=_int(_get(found, "wp:comment_parent")) or None,
            author_name=decode_text(_get(found, "wp:comment_author")),
            author_url=(_get(found, "wp:comment_author_url") or "").strip() or None,
            date=local_iso(_get(found, "wp:comment_date")),
            date_gmt=gmt_iso(_get(found, "wp:comment_date_gmt")),
            content=_get(found, "wp:comment_content") or "",
            status=_COMMENT_STATUS.get(approved, approved or "hold"),
            type=(_get(found, "wp:comment_type") or "").strip() or "comment",
            link=f"{link}#comment-{comment_id}" if link else None,
        )
        checked = dedup.check(str(comment_id), record, where)
        if checked is not None:
            yield checked


def _post_format(refs: list[TermRef]) -> str:
    slug = refs[0]["slug"] if refs else None
    return slug.removeprefix("post-format-") if slug else "standard"


def _digest(fields: Mapping[str, Any]) -> bytes:
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class _Dedup:
    """First occurrence wins; a later different one is an error under a key of its own.

    The keys met are kept in a private temporary SQLite database (an empty file name: on disk,
    deleted when closed, a few pages cached), not in a dict: one entry per item of a
    1,000,000-item export held ~300 MB, so a WXR plan's memory grew with the export."""

    def __init__(self) -> None:
        # The read runs a batch at a time in worker threads, one after another, never two at once.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        # Scratch that dies with the read: nothing to recover, so no journal and no syncs.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE seen (key TEXT PRIMARY KEY, digest BLOB NOT NULL, position TEXT, "
            "count INTEGER NOT NULL) WITHOUT ROWID"
        )

    def close(self) -> None:
        self._db.close()

    def check(
        self, key: str, fields: Mapping[str, Any], position: str, ignore: tuple[str, ...] = ()
    ) -> SourceItem | None:
        comparable = {name: value for name, value in fields.items() if name not in ignore}
        digest = _digest(comparable)
        first_digest, first_position, count = self._db.execute(
            "INSERT INTO seen VALUES (?, ?, ?, 1) ON CONFLICT (key) DO UPDATE SET "
            "count = count + 1 RETURNING digest, position, count",
            (key, digest, position),
        ).fetchone()
        if count == 1:
            return SourceRecord(key=key, fields=fields, position=position)
        if digest == first_digest:
            return None
        return RecordError(
            key=f"{key}~dup{count}",
            reason=(
                f"{key} appears again with different content; the first occurrence "
                f"({first_position}) is the record, this one is not read"
            ),
            position=position,
        )


# ----------------------------------------------------------------------------------------------
# The first pass


ItemObserver = Callable[[ExportItem, Mapping[str, str]], None]


def scan_export(
    path: Path, *, repair: bool = True, each_item: ItemObserver | None = None
) -> ExportScan:
    """The first pass over a whole export (see the module docstring): refuses a hostile prolog,
    checks the file is well-formed WXR, repairs bare ``&`` when ``repair`` allows, streams.

    ``each_item`` sees every item as it goes by, with the channel's facts read so far (a
    channel names its site before its items): how ``flowport init`` learns permalinks from a
    file of any size without a second parser.
    """
    label = path.name
    try:
        return _scan_with(path, label, repair=False, each_item=each_item)
    except _NeedsRepair as needs:
        if not repair:
            raise needs.error from None
        return _scan_with(path, label, repair=True, each_item=each_item)


def _scan_with(
    path: Path, label: str, *, repair: bool, each_item: ItemObserver | None
) -> ExportScan:
    scan = ExportScan(repaired=repair)
    parse = _Parse(path, label, repair)
    creators: dict[str, None] = {}
    for family, local, element in parse.children():
        if (family, local) in _CHANNEL_FACTS:
            scan.channel.setdefault(local, _text(element).strip())
        elif family == "wp" and local == "author":
            author = _author_of(element)
            if author is not None:
                scan.authors.setdefault(author.login, author)
        elif family == "wp" and local == "wxr_version":
            scan.version = _text(element).strip()
        elif family == "wp" and local in _TERM_ELEMENTS:
            term = _term_record(local, element)
            if term is not None:
                scan.declared_terms.add((term["taxonomy"], term["slug"]))
        elif local == "item":
            _scan_item(element, scan, creators, each_item)
    if parse.wp_elements == 0:
        raise SourceError(
            f"{label}: not a WordPress export: nothing in the "
            "http(s)://wordpress.org/export/1.x/ namespace under <channel>"
        )
    scan.creators = list(creators)
    scan.repairs = parse.repairs
    scan.first_repair_line = parse.first_repair_line
    return scan


def _scan_item(
    element: etree._Element,
    scan: ExportScan,
    creators: dict[str, None],
    each_item: ItemObserver | None,
) -> None:
    parts = _fields(element)
    post_type = _post_type_of(parts)
    scan.post_types[post_type] = scan.post_types.get(post_type, 0) + 1
    if each_item is not None:
        each_item(_export_item(parts, post_type), scan.channel)
    creator = (_get(parts, "dc:creator") or "").strip()
    if creator:
        creators.setdefault(creator, None)
    for taxonomy, refs in _item_terms(element).items():
        for ref in refs:
            if ref["slug"]:
                scan.item_terms.setdefault((taxonomy, ref["slug"]), ref["name"] or ref["slug"])
    if post_type != "attachment":
        return
    post_id = _int(_get(parts, "wp:post_id"))
    if post_id is None or post_id in scan.attachments:
        return
    url = (_get(parts, "wp:attachment_url") or _get(parts, ":guid") or "").strip() or None
    alt = _meta(element, "postmeta", "meta_key", "meta_value").get("_wp_attachment_image_alt")
    scan.attachments[post_id] = (url, alt if isinstance(alt, str) else "")


def _export_item(parts: Mapping[str, etree._Element], post_type: str) -> ExportItem:
    def text(name: str) -> str:
        return (_get(parts, name) or "").strip()

    return ExportItem(
        post_type=post_type,
        status=text("wp:status"),
        post_id=text("wp:post_id"),
        post_name=text("wp:post_name"),
        post_date=text("wp:post_date"),
        link=text(":link"),
    )


# ----------------------------------------------------------------------------------------------
# The source


class WxrSource:
    """Records of one kind from one WXR file; see the module docstring."""

    def __init__(
        self, path: Path, *, kind: str = "post", repair: bool = True, batch: int = _BATCH
    ) -> None:
        self._batch = batch
        self._path = path
        self._kind = kind
        self._attachments: dict[int, tuple[str | None, str]] = {}
        #: The last first pass, with the file's (size, mtime) it read: the source check before
        #: the first write, the count and the read share one pass while the file stays as it was.
        self._scanned: tuple[tuple[int, int], ExportScan] | None = None
        self._repair = repair
        self._label = path.name
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"WxrSource({str(self._path)!r}, kind={self._kind!r})"

    async def estimated_total(self, since: str | None = None) -> int | None:
        """From the first pass, which the read that follows then reuses: an upper bound
        (repeated items and ``since`` can only lower it)."""
        scan = await anyio.to_thread.run_sync(self._scan)
        shape = self._shape
        if shape == "post":
            return scan.post_types.get(self._kind, 0)
        if shape == "author":
            logins = [*scan.authors, *scan.creators]
            return len({user_slug(login) for login in logins})
        taxonomy = taxonomy_of(self._kind.removeprefix("term:"))
        used = {(t, slug) for t, slug in scan.item_terms if t == taxonomy}
        return len({term for term in scan.declared_terms if term[0] == taxonomy} | used)

    async def check(self) -> None:
        """The file opens and its prolog is not hostile; the full read checks the rest."""
        await anyio.to_thread.run_sync(self._check_prolog)

    def _check_prolog(self) -> None:
        try:
            raw = self._path.open("rb")
        except OSError as exc:
            raise SourceError(f"{self._label}: cannot open: {exc.strerror or exc}") from None
        with raw:
            refuse_hostile_prolog(raw, self._label)

    def attachment_url(self, attachment_id: str) -> str | None:
        """An attachment's URL by its post id, for ``[gallery ids=...]``, once reading began."""
        number = _int(attachment_id)
        found = self._attachments.get(number) if number is not None else None
        return found[0] if found else None

    @property
    def name(self) -> str:
        return f"wxr:{self._label}:{self._kind}"

    @property
    def incremental(self) -> bool:
        return self._shape == "post"

    @property
    def _shape(self) -> Literal["post", "term", "author", "comment"]:
        if self._kind == "author":
            return "author"
        if self._kind == "comment":
            return "comment"
        if self._kind in ("category", "tag") or self._kind.startswith("term:"):
            return "term"
        return "post"

    def _scan(self) -> ExportScan:
        try:
            stat = self._path.stat()
        except OSError:
            return scan_export(self._path, repair=self._repair)  # says what is wrong with it
        stamp = (stat.st_size, stat.st_mtime_ns)
        if self._scanned is not None and self._scanned[0] == stamp:
            return self._scanned[1]
        scan = scan_export(self._path, repair=self._repair)
        self._scanned = (stamp, scan)
        return scan

    def _read(self, scan: ExportScan) -> Generator[SourceItem, None, None]:
        dedup = _Dedup()
        try:
            yield from self._read_with(scan, dedup)
        finally:
            dedup.close()

    def _read_with(self, scan: ExportScan, dedup: _Dedup) -> Generator[SourceItem, None, None]:
        parse = _Parse(self._path, self._label, scan.repaired)
        shape = self._shape
        taxonomy = taxonomy_of(self._kind.removeprefix("term:")) if shape == "term" else ""
        items = 0
        authors_seen = False
        declared: set[str] = set()
        for family, local, element in parse.children():
            position = f"line {element.sourceline}"
            if local == "item":
                items += 1
                if shape == "post":
                    yield from self._post_item(element, scan, dedup, f"{position} (item {items})")
                elif shape == "comment":
                    yield from _comments_of(element, dedup, position)
                continue
            if family != "wp":
                continue
            if shape == "author" and local == "author":
                authors_seen = True
                author = _author_of(element)
                if author is None:
                    yield RecordError(f"author@{position}", "no wp:author_login", position)
                    continue
                record = _user_record(author)
                checked = dedup.check(record["slug"], record, position)
                if checked is not None:
                    yield checked
            elif shape == "term" and local in _TERM_ELEMENTS:
                term = _term_record(local, element)
                if term is None:
                    yield RecordError(
                        f"{local}@{position}", f"wp:{local} without a taxonomy or slug", position
                    )
                elif term["taxonomy"] == taxonomy:
                    key = term_key(taxonomy, term["slug"])
                    declared.add(term["slug"])
                    checked = dedup.check(key, term, position, ignore=("id",))
                    if checked is not None:
                        yield checked
        if shape == "term":
            # Items may use terms the export never declares; WordPress's importer creates them,
            # so they are records too, or every item using one would lose its reference.
            for (term_taxonomy, slug), name in scan.item_terms.items():
                if term_taxonomy != taxonomy or slug in declared:
                    continue
                declared.add(slug)
                yield SourceRecord(
                    term_key(taxonomy, slug),
                    TermRecord(
                        id=None,
                        taxonomy=taxonomy,
                        slug=slug,
                        name=name,
                        description="",
                        parent=None,
                        link=None,
                        meta={},
                    ),
                    None,
                    "used by an item, not declared",
                )
        if shape == "author":
            # WXR 1.0 has no author list, and real exports credit logins the list lacks (typos
            # such as "themereviewteam>"): every dc:creator login is an author, as WordPress's
            # importer makes it one, or the items it wrote would lose their author.
            # A login that normalizes to a declared author's slug is that author.
            slugs = {user_slug(login) for login in scan.authors} if authors_seen else set()
            for login in scan.creators:
                if user_slug(login) in slugs:
                    continue
                slugs.add(user_slug(login))
                record = _user_record(_Author(None, login, login, None, None, None))
                checked = dedup.check(record["slug"], record, "dc:creator")
                if checked is not None:
                    yield checked

    def _post_item(
        self, element: etree._Element, scan: ExportScan, dedup: _Dedup, position: str
    ) -> Iterator[SourceItem]:
        parts = _fields(element)
        if _post_type_of(parts) != self._kind:
            return
        item = _item_record(element, scan)
        if item.fields is None:
            yield RecordError(
                f"item@{position}", "item with neither a numeric wp:post_id nor a guid", position
            )
            return
        # Hand-written exports (theme-preview.xml) omit ids; the guid is the next stable name.
        key = post_key(item.post_id) if item.post_id is not None else f"guid:{item.fields['guid']}"
        checked = dedup.check(key, item.fields, position)
        if isinstance(checked, SourceRecord):
            yield SourceRecord(checked.key, checked.fields, item.cursor, position)
        elif checked is not None:
            yield checked

    async def records(self, since: str | None = None) -> AsyncIterator[SourceItem]:
        since_at = since_for_read(
            self.name, since, incremental=self.incremental, read_in_full="terms and authors"
        )
        scan = await anyio.to_thread.run_sync(self._scan)
        self._attachments = scan.attachments
        note = scan.repair_note(self._label)
        if note is not None:
            self.notes.append(note)
            log.warning(note)
        reader = self._read(scan)
        take: Callable[[], list[SourceItem]] = lambda: list(islice(reader, self._batch))  # noqa: E731
        try:
            while batch := await anyio.to_thread.run_sync(take):
                for item in batch:
                    if (
                        since_at is not None
                        and isinstance(item, SourceRecord)
                        and not is_at_or_after(item.cursor, since_at)
                    ):
                        continue
                    yield item
        finally:
            reader.close()
