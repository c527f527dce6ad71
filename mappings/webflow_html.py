"""What Webflow's rich-text field keeps, and how other HTML is turned into it, each change named.

What Webflow keeps, and where that is known from:

* The Data API reference, "Field Types & Item Values" (developers.webflow.com/data/reference/
  field-types-item-values): a RichText value is an HTML string, and "passing code blocks will
  result in an empty string". So ``<pre>`` is never sent: a code block becomes one paragraph per
  line, the line in ``<code>`` with its indentation as no-break spaces. Paragraphs are what the
  editor itself makes of lines, a reader can still copy the code, and nothing depends on custom
  code being allowed on the site; a blank line becomes a paragraph holding a zero-width joiner,
  which is how Webflow's editor stores an empty paragraph.
* Videos: Webflow's editor stores a video as ``<figure class="w-richtext-figure-type-video
  w-richtext-align-…" data-rt-type="video" … data-page-url="<page>"><div><iframe src="<player>"
  …></iframe></div></figure>``: the markup webflow.css styles (``.w-richtext
  figure[data-rt-type="video"] > div``) and that the API returns for sites built with the editor
  (seen in public code that copies Webflow items, e.g. zenml.io's CMS exports). An iframe, object
  or embed of a provider whose player URL is known (YouTube, Vimeo, VideoPress, Dailymotion)
  becomes that figure; any other becomes a link to its source, with a warning.
* Custom code: the API returns an editor "embed" as ``<div data-rt-embed-type='true'>…</div>``
  (public migration notes and code that read Webflow rich text, e.g. a "mygratr" audit and
  zenml's exports, where tables and ``<pre><code>`` live inside one).
* Tables: Webflow's rich text has no table element (its editor offers none; a table outside an
  embed does not survive the editor). Tables therefore become one paragraph per row, cells
  joined by " | ", by default: plain rich text that every site keeps and its editors can edit.
  ``tables = "embed"`` keeps the table's HTML inside a custom-code embed instead, which keeps
  the grid but is code, not text, to the site's editors.
* Top level: the editor's blocks are paragraphs, headings, quotes, lists and figures; text
  directly at the top level is not one of them, so every inline run gets a paragraph.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, cast
from urllib.parse import parse_qs, urlsplit

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

__all__ = [
    "LINK_SCHEMES",
    "TABLE_MODES",
    "RichTextOptions",
    "WarningLog",
    "code_paragraphs",
    "excerpt",
    "normalise_for_webflow",
    "protect_webflow_blocks",
    "top_level_bare_text",
    "video_figure",
    "video_urls",
]

TableMode = Literal["rows", "embed"]
TABLE_MODES: Final[tuple[TableMode, ...]] = ("rows", "embed")

#: Schemes a link keeps. Webflow's link settings offer web pages, email (mailto:) and phone
#: (tel:); the others are the HTML standard's safelisted schemes for protocol handlers
#: (html.spec.whatwg.org, "registerProtocolHandler"), which browsers follow. Not yet checked
#: against a live Webflow site; anything else (javascript:, data:, vbscript:...) is dropped
#: with a ``link_scheme_dropped`` warning naming the link.
LINK_SCHEMES: Final = frozenset(
    {
        "http", "https", "mailto", "tel", "sms", "smsto", "irc", "ircs", "xmpp", "sip",
        "geo", "im", "magnet", "matrix", "mms", "news", "nntp", "openpgp4fpr", "ftp", "ftps",
        "sftp", "ssh", "urn", "webcal", "bitcoin", "callto", "skype",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RichTextOptions:
    """A job's choices for ``richtext_wordpress``; ``shortcodes`` adds names a site registers."""

    tables: TableMode = "rows"
    shortcodes: frozenset[str] = field(default_factory=frozenset)


def excerpt(text: str, limit: int = 80) -> str:
    """Whitespace folded and cut to ``limit`` characters, for a warning's message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WarningLog:
    """One warning per kind: the first occurrence's message, and how many more there were.

    A post with forty unknown shortcodes gets one line a user can act on, not forty.
    """

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._count: dict[str, int] = {}
        self._each: list[tuple[str, str]] = []

    def add(self, kind: str, message: str) -> None:
        self._first.setdefault(kind, message)
        self._count[kind] = self._count.get(kind, 0) + 1

    def add_each(self, kind: str, message: str) -> None:
        """A warning of its own, never folded: for what a user must fix one by one (a link)."""
        if (kind, message) not in self._each:
            self._each.append((kind, message))

    def warnings(self) -> tuple[tuple[str, str], ...]:
        folded = tuple(
            (kind, message if self._count[kind] == 1 else f"{message} (+{self._count[kind] - 1})")
            for kind, message in self._first.items()
        )
        return folded + tuple(self._each)


# --- Videos ----------------------------------------------------------------------------------

_VIDEO_ID: Final = re.compile(r"[A-Za-z0-9_-]{4,64}")


_VIMEO: Final = ("https://player.vimeo.com/video/{}", "https://vimeo.com/{}")
_VIDEOPRESS: Final = ("https://videopress.com/embed/{}", "https://videopress.com/v/{}")
_DAILYMOTION: Final = (
    "https://www.dailymotion.com/embed/video/{}",
    "https://www.dailymotion.com/video/{}",
)
#: Host, path pattern (the video's id in group 1), player URL, page URL; YouTube has its own.
_PROVIDERS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("player.vimeo.com", r"^/video/(\d+)", *_VIMEO),
    ("vimeo.com", r"^/(?:video/)?(\d+)", *_VIMEO),
    ("videopress.com", r"^/(?:embed|v)/([^/?#]+)", *_VIDEOPRESS),
    ("video.wordpress.com", r"^/(?:embed|v)/([^/?#]+)", *_VIDEOPRESS),
    ("dailymotion.com", r"^/(?:embed/)?video/([^/?#_]+)", *_DAILYMOTION),
    ("dai.ly", r"^/([^/?#]+)", *_DAILYMOTION),
)


def _youtube_id(host: str, path: str, query: str) -> str:
    if host == "youtu.be":
        return path.strip("/").split("/")[0]
    if host not in ("youtube.com", "youtube-nocookie.com"):
        return ""
    # /v/ID is the old Flash player that <object>/<embed> pointed at.
    match = re.match(r"^/(?:embed|v|shorts|live)/([^/?&#]+)", path)
    if match:
        return match.group(1)
    return parse_qs(query).get("v", [""])[0] if path == "/watch" else ""


def _provider_urls(host: str, path: str, query: str) -> tuple[str, str] | None:
    video = _youtube_id(host, path, query)
    if _VIDEO_ID.fullmatch(video):
        return f"https://www.youtube.com/embed/{video}", f"https://www.youtube.com/watch?v={video}"
    for provider_host, pattern, player, page in _PROVIDERS:
        match = re.match(pattern, path) if host == provider_host else None
        if match and _VIDEO_ID.fullmatch(match.group(1)):
            return player.format(match.group(1)), page.format(match.group(1))
    return None


def video_urls(url: str) -> tuple[str, str] | None:
    """(player URL, page URL) for a video of a known provider, else None."""
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().removeprefix("www.").removeprefix("m.")
    return _provider_urls(host, parts.path, parts.query)


def video_figure(player_url: str, page_url: str, title: str = "") -> str:
    """Webflow's editor markup for a video, at 16:9 and full width as the editor inserts it."""
    e = html_lib.escape
    return (
        '<figure class="w-richtext-figure-type-video w-richtext-align-fullwidth" '
        'style="padding-bottom:56.25%" data-rt-type="video" data-rt-align="fullwidth" '
        'data-rt-max-width="" data-rt-max-height="56.25%" data-rt-dimensions="640:360" '
        f'data-page-url="{e(page_url)}"><div><iframe allowfullscreen="true" frameborder="0" '
        f'scrolling="no" src="{e(player_url)}" title="{e(title)}"></iframe></div></figure>'
    )


def _embed_block(inner: str) -> str:
    return f'<div data-rt-embed-type="true">{inner}</div>'


_VIDEO_FIGURE: Final = re.compile(
    r"<figure\b[^>]*\bdata-rt-type=\"video\"[^>]*>\s*<div>\s*<iframe\b([^>]*)>\s*</iframe>"
    r"\s*</div>\s*</figure>",
    re.I,
)
_EMBED_BLOCK: Final = re.compile(r"<div data-rt-embed-type=[\"']true[\"']>(.*?)</div>", re.S | re.I)
_ATTRIBUTE_VALUE: Final = re.compile(r"\b(src|title)=\"([^\"]*)\"")
_PLACEHOLDER: Final = re.compile("\ue000(\\d+)\ue000")


def protect_webflow_blocks(
    html: str, clean_embed: Callable[[str], str]
) -> tuple[str, Callable[[str], str]]:
    """Video figures and custom-code embeds set aside from a flat allow-list sanitizer.

    An allow-list of tags and attributes cannot say "an iframe, but only in a video figure of a
    known player"; so such blocks are recognised here, replaced by placeholders, and rebuilt by
    the returned function from their validated parts (never from the raw markup).
    """
    blocks: list[str] = []

    def keep(markup: str) -> str:
        blocks.append(markup)
        return f"\ue000{len(blocks) - 1}\ue000"

    def video(match: re.Match[str]) -> str:
        values = {k: html_lib.unescape(v) for k, v in _ATTRIBUTE_VALUE.findall(match.group(1))}
        urls = video_urls(values.get("src", ""))
        if urls is None:
            return ""
        return keep(video_figure(urls[0], urls[1], values.get("title", "")))

    def embed(match: re.Match[str]) -> str:
        inner = clean_embed(match.group(1))
        return keep(_embed_block(inner)) if inner else ""

    html = _VIDEO_FIGURE.sub(video, html.replace("\ue000", ""))
    html = _EMBED_BLOCK.sub(embed, html)

    def restore(cleaned: str) -> str:
        return _PLACEHOLDER.sub(lambda m: blocks[int(m.group(1))], cleaned)

    return html, restore


# --- Code ------------------------------------------------------------------------------------

_ZERO_WIDTH_JOINER: Final = "\u200d"


def _code_line(line: str) -> str:
    line = line.expandtabs(4).rstrip()
    if not line:
        return f"<p>{_ZERO_WIDTH_JOINER}</p>"
    indent = len(line) - len(line.lstrip(" "))
    # Runs of spaces collapse in HTML; no-break spaces keep indentation and alignment.
    body = html_lib.escape(line[indent:], quote=False).replace("  ", " \u00a0")
    return f"<p><code>{chr(0xA0) * indent}{body}</code></p>"


def code_paragraphs(code: str) -> tuple[str, str]:
    """(paragraphs, first non-blank line) for a code block given as plain text."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    return "".join(_code_line(line) for line in lines), first


# --- The tree pass ---------------------------------------------------------------------------


_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: Elements Webflow's rich text holds at its top level (figures: see _is_kept_block).
_TOP_BLOCKS: Final = frozenset({"p", "blockquote", "ul", "ol", "hr", *_HEADINGS})
#: Elements that only group others: their parts become paragraphs, the element goes.
_CONTAINERS: Final = frozenset(
    {
        "div", "section", "article", "header", "footer", "main", "aside", "nav", "center",
        "address", "details", "summary", "fieldset", "form", "hgroup", "dl", "figure",
        "table", "thead", "tbody", "tfoot", "tr",
    }
)  # fmt: skip
#: Elements that read as a paragraph of their own outside a Webflow block.
_PARAGRAPH_LIKE: Final = frozenset(
    {"dt", "dd", "figcaption", "caption", "legend", "td", "th", "li", "pre"}
)
_DROPPED: Final = frozenset(
    {"script", "style", "template", "noscript", "svg", "math", "head", "title"}
)
_SCHEME: Final = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")


def _is_embed_block(element: HtmlElement) -> bool:
    return bool(element.tag == "div" and element.get("data-rt-embed-type") == "true")


def _is_image_figure(element: HtmlElement) -> bool:
    return (
        element.tag == "figure"
        and element.get("data-rt-type") != "video"
        and element.find(".//img") is not None
        and element.find(".//figure") is None
        and element.find(".//table") is None
    )


def _is_kept_block(element: HtmlElement) -> bool:
    if element.tag == "figure":
        return _is_image_figure(element) or element.get("data-rt-type") == "video"
    return element.tag in _TOP_BLOCKS or _is_embed_block(element)


def _is_container(element: HtmlElement) -> bool:
    return element.tag in _CONTAINERS and not _is_kept_block(element)


def _append(box: HtmlElement, item: str | HtmlElement) -> None:
    if isinstance(item, str):
        if len(box):
            box[-1].tail = (box[-1].tail or "") + item
        else:
            box.text = (box.text or "") + item
    else:
        box.append(item)


def _meaningful(item: str | HtmlElement) -> bool:
    return bool(item.strip()) if isinstance(item, str) else item.tag != "br"


def _contents(box: HtmlElement) -> list[str | HtmlElement]:
    """The box's text and children in order, taken out of it."""
    items: list[str | HtmlElement] = [box.text] if box.text else []
    box.text = None
    for child in list(box):
        tail, child.tail = child.tail, None
        box.remove(child)
        items.append(child)
        if tail:
            items.append(tail)
    return items


def _paragraph_of(run: list[str | HtmlElement], box: HtmlElement) -> None:
    """Appends the run to ``box`` as one paragraph, its outer whitespace left outside it."""
    first = run[0]
    if isinstance(first, str):
        _append(box, first[: len(first) - len(first.lstrip())])
        run[0] = first.lstrip()
    trailing, last = "", run[-1]
    if isinstance(last, str):
        trailing = last[len(last.rstrip()) :]
        run[-1] = last.rstrip()
    paragraph = lxml.html.Element("p")
    for item in run:
        _append(paragraph, item)
    box.append(paragraph)
    _append(box, trailing)


def _wrap_inline_runs(box: HtmlElement) -> None:
    """Each run of text and inline elements directly in ``box`` becomes a paragraph."""
    run: list[str | HtmlElement] = []

    def flush() -> None:
        if any(_meaningful(item) for item in run):
            _paragraph_of(run, box)
        else:  # whitespace and stray <br>: the whitespace stays, the breaks go
            for item in run:
                if isinstance(item, str):
                    _append(box, item)
        run.clear()

    for item in _contents(box):
        if isinstance(item, str) or not _is_kept_block(item):
            run.append(item)
        else:
            flush()
            box.append(item)
    flush()


def _trim_end(parent: HtmlElement, element: HtmlElement) -> None:
    """No trailing space left in the part of a paragraph before a block moved out of it."""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "").rstrip() or None
    else:
        parent.text = (parent.text or "").rstrip() or None


def _remove_keeping_text(element: HtmlElement) -> None:
    parent = element.getparent()
    assert parent is not None
    previous, text = element.getprevious(), (element.text or "") + (element.tail or "")
    parent.remove(element)
    if text and previous is not None:
        previous.tail = (previous.tail or "") + text
    elif text:
        parent.text = (parent.text or "") + text


def _hoist(element: HtmlElement, root: HtmlElement) -> None:
    """Moves ``element`` to the top level, splitting every element it sat in around it."""
    while (parent := element.getparent()) is not None and parent is not root:
        grand = parent.getparent()
        assert grand is not None
        after = lxml.html.Element(parent.tag, dict(parent.attrib))
        after.text, element.tail = (element.tail or "").lstrip() or None, None
        _trim_end(parent, element)
        for sibling in list(element.itersiblings()):
            after.append(sibling)
        old_tail, parent.tail = parent.tail, None
        index = grand.index(parent)
        grand.insert(index + 1, element)
        if (after.text or "").strip() or len(after):
            grand.insert(index + 2, after)
            after.tail = old_tail
        else:
            element.tail = old_tail
        if not (parent.text or "").strip() and not len(parent):
            _remove_keeping_text(parent)


def _dissolve(box: HtmlElement, root: HtmlElement) -> None:
    """A container's parts as top-level blocks: its own inline runs become paragraphs."""
    for child in list(box):
        if _is_container(child):
            _dissolve(child, root)
        elif child.tag in _PARAGRAPH_LIKE:
            _flatten_inside(child)
            _become_paragraph(child)
        elif _is_kept_block(child) and not _is_embed_block(child):
            _flatten_inside(child)
    _wrap_inline_runs(box)
    if box is not root:
        box.drop_tag()


def _become_paragraph(element: HtmlElement) -> None:
    element.tag = "p"
    element.attrib.clear()
    # A caption's closing <br> (the block editor leaves one) would be an empty last line.
    while len(element) and element[-1].tag == "br" and not (element[-1].tail or "").strip():
        element.remove(element[-1])


def _flatten_inside(block: HtmlElement) -> None:
    """Containers inside a paragraph, heading or list item: their parts on lines of their own."""
    if _is_image_figure(block) or block.tag == "figure":
        return
    nested = [e for e in block.iterdescendants() if _is_container(e) or e.tag in _PARAGRAPH_LIKE]
    for element in reversed(nested):
        parent = element.getparent()
        if element.tag == "li" and parent is not None and parent.tag in ("ul", "ol"):
            continue
        if block.tag == "blockquote" and parent is block:
            # Webflow's quotes hold paragraphs, as WordPress's do.
            _flatten_inside(element)
            _become_paragraph(element)
            continue
        if element.getnext() is not None or (element.tail or "").strip():
            element.append(lxml.html.Element("br"))
        element.drop_tag()
    if block.tag == "blockquote" and any(child.tag == "p" for child in block):
        _wrap_inline_runs(block)  # "<p>quote</p><cite>who</cite>": the citation a paragraph too


def _fragment(markup: str) -> HtmlElement:
    return cast("HtmlElement", lxml.html.fragment_fromstring(markup, create_parent="div"))


def _serialise_children(box: HtmlElement) -> str:
    parts = [html_lib.escape(box.text, quote=False)] if box.text else []
    parts.extend(
        cast("str", lxml.html.tostring(child, encoding="unicode", method="html")) for child in box
    )
    return "".join(parts)


class _Normaliser:
    """One pass over a body's tree: embeds, code, tables, links, then block structure."""

    def __init__(self, options: RichTextOptions, log: WarningLog) -> None:
        self.options = options
        self.log = log

    def run(self, root: HtmlElement) -> None:
        for element in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
            element.drop_tree()
        for element in list(root.iter(*_DROPPED)):
            element.drop_tree()
        self.embeds(root)
        # Tables before code: a <pre> in a cell stays in its row (or in the embedded table).
        for element in list(root.iter("table")):
            if _attached(element, root):
                self.table(element, root)
        for element in list(root.iter("pre")):
            if _attached(element, root) and not _inside(element, _is_embed_block):
                self.code_block(element, root)
        for element in list(root.iter("a")):
            self.link(element)
        _dissolve(root, root)

    # Embeds --------------------------------------------------------------------------------

    def embeds(self, root: HtmlElement) -> None:
        for element in list(root.iter("figure")):
            if (
                "wp-block-embed" in (element.get("class") or "")
                and element.find(".//iframe") is None
            ):
                self.block_editor_embed(element, root)
        for element in list(root.iter("iframe", "object", "embed", "video", "audio")):
            if _attached(element, root) and not _inside(element, _is_video_figure):
                self.embed(element, root)

    def block_editor_embed(self, figure: HtmlElement, root: HtmlElement) -> None:
        # The block editor stores an embed as its URL in a wrapper; WordPress renders the player.
        caption = figure.find("figcaption")
        wrapper = figure.find("div")
        url = (wrapper.text_content() if wrapper is not None else "").strip()
        if not url:
            return
        replacement = self.embed_markup(url.split()[0], "", f"embed of {url}")
        if caption is not None:
            _become_paragraph(caption)
            replacement += cast(
                "str", lxml.html.tostring(caption, encoding="unicode", with_tail=False)
            )
        self.replace(figure, f"<div>{replacement}</div>", root)

    def embed(self, element: HtmlElement, root: HtmlElement) -> None:
        source = _embed_source(element)
        what = f"<{element.tag}> {source}" if source else f"<{element.tag}> without a source"
        if not source:
            self.log.add("embed_dropped", f"{excerpt(what)} was removed: nothing to link to")
            element.drop_tree()
            return
        markup = self.embed_markup(source, element.get("title") or "", what)
        self.replace(element, markup, root)

    def embed_markup(self, source: str, title: str, what: str) -> str:
        urls = video_urls(source)
        if urls is not None:
            self.log.add("video_embedded", f"{excerpt(what)} became a Webflow video")
            return video_figure(urls[0], urls[1], title)
        self.log.add(
            "embed_linked", f"{excerpt(what)} became a link: Webflow plays only known video players"
        )
        safe = html_lib.escape(source.strip(), quote=True)
        return f'<p><a href="{safe}">{html_lib.escape(title) or safe}</a></p>'

    def replace(self, element: HtmlElement, markup: str, root: HtmlElement) -> None:
        new = _fragment(markup)
        new.tail = element.tail
        element.tail = None
        parent = element.getparent()
        assert parent is not None
        parent.replace(element, new)
        _hoist(new, root)

    # Code and tables -----------------------------------------------------------------------

    def code_block(self, pre: HtmlElement, root: HtmlElement) -> None:
        for line_break in list(pre.iter("br")):  # a <br> in a code block is a line end
            line_break.tail = "\n" + (line_break.tail or "")
            line_break.drop_tag()
        paragraphs, first = code_paragraphs(pre.text_content())
        if not first:
            pre.drop_tree()
            return
        self.log.add("code_block", f"code block {excerpt(first, 60)!r} became code paragraphs")
        self.replace(pre, f"<div>{paragraphs}</div>", root)

    def table(self, table: HtmlElement, root: HtmlElement) -> None:
        texts = [
            _without_empty_tail([" ".join(cell.text_content().split()) for cell in row])
            for row in _rows(table)
        ]
        first = excerpt(" | ".join(next((row for row in texts if row), [])), 60)
        if self.options.tables == "embed":
            self.log.add("table_kept_html", f"table {first!r} kept as HTML in a custom-code embed")
            _fold_whitespace(table)
            markup = lxml.html.tostring(table, encoding="unicode", method="html", with_tail=False)
            self.replace(table, f"<div>{_embed_block(cast('str', markup))}</div>", root)
            return
        self.log.add("table_flattened", f"table {first!r} became one paragraph per row")
        # Empty trailing cells carry nothing but " | " noise; empty rows nothing at all.
        rows = [_without_empty_tail([_cell_markup(cell) for cell in row]) for row in _rows(table)]
        paragraphs = "".join(f"<p>{' | '.join(row)}</p>" for row in rows if row)
        self.replace(table, f"<div>{paragraphs}</div>", root)

    # Links -----------------------------------------------------------------------------------

    def link(self, anchor: HtmlElement) -> None:
        href = anchor.get("href")
        if href is None:
            return
        scheme = _SCHEME.match(href)
        if scheme is None or scheme.group(1).lower() in LINK_SCHEMES:
            return
        text = excerpt(anchor.text_content(), 30)
        self.log.add(
            "link_scheme_dropped",
            f"link {text!r} to {excerpt(href, 40)!r} lost its address: "
            f"{scheme.group(1).lower()}: is not kept",
        )
        del anchor.attrib["href"]


def _inside(element: HtmlElement, kind: Callable[[HtmlElement], bool]) -> bool:
    return any(kind(ancestor) for ancestor in element.iterancestors())


def _is_video_figure(element: HtmlElement) -> bool:
    return bool(element.tag == "figure" and element.get("data-rt-type") == "video")


def _attached(element: HtmlElement, root: HtmlElement) -> bool:
    return any(ancestor is root for ancestor in element.iterancestors())


def _embed_source(element: HtmlElement) -> str:
    if element.tag == "object":
        movie = element.find(".//param[@name='movie']")
        if movie is None:
            movie = element.find(".//param[@name='src']")
        nested = element.find(".//embed")
        for candidate in (
            movie.get("value") if movie is not None else None,
            element.get("data"),
            nested.get("src") if nested is not None else None,
        ):
            if candidate and candidate.strip():
                return str(candidate).strip()
        return ""
    source = element.get("src") or element.get("data-src") or ""
    if not source.strip() and element.tag in ("video", "audio"):
        nested = element.find(".//source[@src]")
        source = nested.get("src") or "" if nested is not None else ""
    return source.strip()


_TABLE_PARTS: Final = frozenset({"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption"})


def _fold_whitespace(table: HtmlElement) -> None:
    """wpautop's line breaks and paragraphs inside a table are layout, not content."""
    for paragraph in list(table.iter("p")):
        paragraph.drop_tag()
    for element in table.iter():
        if element.tag == "pre" or _inside(element, lambda e: e.tag == "pre"):
            continue  # a code block's line breaks are its content
        element.text = re.sub(r"\s+", " ", element.text) if element.text else None
        element.tail = re.sub(r"\s+", " ", element.tail) if element.tail else None
        if element.tag in _TABLE_PARTS and not (element.tail or "").strip():
            element.tail = None
        if element.tag in _TABLE_PARTS - {"td", "th", "caption"}:
            element.text = None if not (element.text or "").strip() else element.text
    for cell in table.iter("td", "th", "caption"):
        cell.text = (cell.text or "").lstrip() or None
        if len(cell):
            cell[-1].tail = (cell[-1].tail or "").rstrip() or None
        else:
            cell.text = (cell.text or "").rstrip() or None


def _cell_markup(cell: HtmlElement) -> str:
    markup = _inline_markup(cell)
    # A header cell says what a column is; bold keeps that once the grid is gone.
    return f"<strong>{markup}</strong>" if cell.tag == "th" and markup else markup


def _inline_markup(cell: HtmlElement) -> str:
    for block in list(cell.iter(*_CONTAINERS, *_PARAGRAPH_LIKE, *_TOP_BLOCKS)):
        if block is not cell:
            block.tail = " " + (block.tail or "")
            block.drop_tag()
    return " ".join(_serialise_children(cell).split())


def _rows(table: HtmlElement) -> list[list[HtmlElement]]:
    return [list(row.iter("td", "th")) for row in table.iter("tr")]


def _without_empty_tail(row: list[str]) -> list[str]:
    while row and not _text_of(row[-1]):
        row = row[:-1]
    return row


def _text_of(markup: str) -> str:
    return " ".join(_fragment(markup).text_content().split()) if markup else ""


def normalise_for_webflow(html: str, options: RichTextOptions, log: WarningLog) -> str:
    """Markup Webflow's rich text keeps: videos, code, tables, links and paragraphs rewritten."""
    if not html.strip():
        return ""
    root = _fragment(html)
    _Normaliser(options, log).run(root)
    return _serialise_children(root)


def top_level_bare_text(html: str) -> list[str]:
    """Text (or inline markup) found directly at the top level, where Webflow expects blocks."""
    if not html.strip():
        return []
    root = _fragment(html)
    found = [root.text] if root.text and root.text.strip() else []
    for child in root:
        if not _is_kept_block(child):
            found.append(child.text_content())
        if child.tail and child.tail.strip():
            found.append(child.tail)
    return [excerpt(text) for text in found if text.strip()]
