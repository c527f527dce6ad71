"""HTML for Webflow Rich Text fields: sanitising, Markdown, and WordPress post content.

Webflow's rich text keeps a small set of elements (paragraphs, headings, quotes, lists, links,
images in figures, emphasis, code, line breaks and rules), its own video figures and custom-code
embeds (see ``webflow_html``); everything else is unwrapped (its text kept) or, for scripts and
styles, dropped with its content. Relative links and image sources are made absolute against the
collection's ``base_url`` so they still work once on Webflow.

WordPress content is converted in three steps: shortcodes and wpautop's paragraphs (here), the
rewrite into what Webflow keeps, each change recorded as a warning (``webflow_html``), and the
sanitizer.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

import nh3

from flowport.mappings.links import LinkMap
from flowport.mappings.webflow_html import (
    LINK_SCHEMES,
    TABLE_MODES,
    RichTextOptions,
    WarningLog,
    code_paragraphs,
    excerpt,
    normalise_for_webflow,
    protect_webflow_blocks,
    video_figure,
    video_urls,
)

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = [
    "ALLOWED_TAGS",
    "KNOWN_SHORTCODES",
    "OLD_SITE_LINK",
    "OLD_SITE_LINK_TEXT",
    "REGISTERED_SHORTCODES",
    "TABLE_MODES",
    "RichTextOptions",
    "RichTextResult",
    "markdown_to_html",
    "sanitize_html",
    "wordpress_to_html",
]

ALLOWED_TAGS: Final = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li", "a", "img",
        "figure", "figcaption", "strong", "em", "b", "i", "u", "code", "pre", "br", "hr",
    }
)  # fmt: skip
_ATTRIBUTES: Final = {"a": {"href", "target", "title"}, "img": {"src", "alt"}}
_TABLE_TAGS: Final = frozenset({"table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td"})
_DROPPED_WITH_CONTENT: Final = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math"}
)


_ABSOLUTE: Final = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//|#)")


#: A link's new address (or the link unchanged), given its absolute (or relative) href.
LinkRewriter = Callable[[str], str]


def _absolute_urls(
    base_url: str | None,
    relative: list[str] | None,
    links: LinkRewriter | None = None,
    keep_relative: Callable[[str], bool] | None = None,
) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            value = value.strip()
            if not value:
                return None
            if keep_relative is not None and keep_relative(value):
                return value
            if not _ABSOLUTE.match(value):
                if base_url:
                    value = urljoin(base_url, value)
                elif relative is not None:
                    relative.append(value)
            # The one place every href passes once made absolute: links to the old site's
            # own pages are rewritten here, after which nothing joins them to base_url again.
            if links is not None and tag == "a" and attribute == "href":
                return links(value)
            return value
        if tag == "a" and attribute == "target" and value not in ("_blank", "_self"):
            return None
        return value

    return keep


def sanitize_html(
    html: str,
    *,
    base_url: str | None = None,
    relative: list[str] | None = None,
    links: LinkRewriter | None = None,
    keep_relative: Callable[[str], bool] | None = None,
) -> str:
    """Only what Webflow rich text keeps; no scripts, event handlers, styles or unsafe URLs.

    Relative links and sources are joined to ``base_url``; without one they are kept and, when
    ``relative`` is given, listed there so the caller can warn.
    """
    keep_urls = _absolute_urls(base_url, relative, links, keep_relative)

    def clean(markup: str, tags: frozenset[str]) -> str:
        return nh3.clean(
            markup,
            tags=set(tags),
            clean_content_tags=set(_DROPPED_WITH_CONTENT),
            # "*" must be given, or ammonia keeps its default lang/title on every element.
            attributes={
                "*": set(),
                "td": {"colspan", "rowspan"},
                "th": {"colspan", "rowspan"},
                **{tag: set(names) for tag, names in _ATTRIBUTES.items()},
            },
            attribute_filter=keep_urls,
            url_schemes=set(LINK_SCHEMES),
            link_rel=None,
            strip_comments=True,
        )

    def clean_embed(inner: str) -> str:
        return clean(inner, (ALLOWED_TAGS - {"figure", "figcaption"}) | _TABLE_TAGS).strip()

    protected, restore = protect_webflow_blocks(html, clean_embed)
    return restore(clean(protected, ALLOWED_TAGS)).strip()


@functools.cache
def _markdown() -> MarkdownIt:
    # Built on first use, not at import: most jobs never convert Markdown.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True})


def markdown_to_html(text: str, *, base_url: str | None = None) -> str:
    return sanitize_html(_markdown().render(text), base_url=base_url)


# --- WordPress post content ------------------------------------------------------------------

_BLOCK_COMMENT: Final = re.compile(r"<!--\s*/?wp:.*?-->", re.DOTALL)
_PROTECTED: Final = re.compile(r"<(pre|code|script|style)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.I)
_SHORTCODE: Final = re.compile(r"\[([A-Za-z][\w-]*)(?=[\s\]/=])([^\[\]]*?)(/)?\]")
_ATTRIBUTE: Final = re.compile(
    r"""([\w-]+)\s*=\s*"([^"]*)"(?:\s|$)|([\w-]+)\s*=\s*'([^']*)'(?:\s|$)"""
    r"""|([\w-]+)\s*=\s*([^\s'"]+)(?:\s|$)|"([^"]*)"(?:\s|$)|'([^']*)'(?:\s|$)|(\S+)(?:\s|$)"""
)
_CAPTIONED: Final = re.compile(
    r"^\s*((?:<a\b[^>]*>\s*)?<img\b[^>]*>(?:\s*</a>)?)(.*)$", re.DOTALL | re.I
)
_BLOCK_TAGS: Final = (
    "address|article|aside|blockquote|details|div|dl|dd|dt|fieldset|figcaption|figure|footer|"
    "form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|summary|table|tbody|td|tfoot|th|thead|"
    "tr|ul"
)
_BLOCK_OPEN: Final = re.compile(rf"(<(?:{_BLOCK_TAGS})\b[^>]*>)", re.I)
_BLOCK_CLOSE: Final = re.compile(rf"(</(?:{_BLOCK_TAGS})>)", re.I)
_BLANK_BETWEEN_TAGS: Final = re.compile(r">\s*\n\s*\n\s*<")
_STARTS_BLOCK: Final = re.compile(rf"^(?:</?(?:{_BLOCK_TAGS})\b|\x00\d+\x00$)", re.I)
_PLACEHOLDER: Final = re.compile(r"([\x00\x01])(\d+)\1")
_MEDIA_KEYS: Final = ("src", "mp4", "m4v", "webm", "ogv", "wmv", "flv", "mp3", "ogg", "wav", "m4a")
#: Shortcodes WordPress core, Jetpack and the code highlighters (SyntaxHighlighter Evolved,
#: Jetpack's [code]) register, which flowport turns into Webflow markup.
KNOWN_SHORTCODES: Final = frozenset(
    {
        "caption", "wp_caption", "gallery", "embed", "video", "audio", "youtube", "vimeo",
        "playlist", "code", "sourcecode",
    }
)  # fmt: skip
#: Shortcodes common plugins and themes register whose output only WordPress can render: they
#: are removed (their content kept) with a warning. Any other bracketed text is prose, kept
#: verbatim; a job names its site's own with ``{richtext_wordpress = {shortcodes = [...]}}``.
REGISTERED_SHORTCODES: Final = frozenset(
    {
        "contact-form-7", "contact-form", "gravityform", "gravityforms", "wpforms", "ninja_form",
        "mc4wp_form", "column", "columns", "one_half", "one_half_last", "one_third",
        "one_third_last", "two_third", "one_fourth", "three_fourth", "button", "row", "tabs",
        "tab", "accordion", "toggle", "box", "alert", "quote", "pullquote", "divider", "spacer",
        "icon", "woocommerce_cart", "woocommerce_checkout", "products", "product", "add_to_cart",
        "recent_products", "wpseo_breadcrumb", "rank_math_breadcrumb", "ultimatemember",
        "instagram-feed", "custom-twitter-feeds", "soundcloud", "googlemaps", "slideshow",
        "tweet", "twitter-timeline", "archives", "sitemap", "bbp-forum-index", "wp_sitemap_page",
        "smart_slider3", "rev_slider", "metaslider", "layerslider", "ngg", "nggallery",
        "envira-gallery", "foogallery", "table", "wpdatatable", "tablepress", "fusion_builder",
        "cs_content", "elementor-template", "shortcode", "wpv-post-body", "php",
    }
)  # fmt: skip
#: Page builders register whole families of shortcodes by prefix.
_REGISTERED_PREFIXES: Final = ("vc_", "et_pb_", "fusion_", "su_", "av_", "mk_", "cs_", "themify_")


def _is_registered(name: str, extra: frozenset[str]) -> bool:
    return name in REGISTERED_SHORTCODES or name in extra or name.startswith(_REGISTERED_PREFIXES)


@dataclass(frozen=True, slots=True)
class RichTextResult:
    html: str
    #: (kind, message): one per kind, the first occurrence's excerpt, the count of the others.
    warnings: tuple[tuple[str, str], ...] = ()


def _attributes(text: str) -> dict[str, str]:
    text = html_lib.unescape(text).replace("\u201c", '"').replace("\u201d", '"').strip()
    if text.startswith("="):
        text = text[1:]
    found: dict[str, str] = {}
    position = 0
    for match in _ATTRIBUTE.finditer(text):
        groups = match.groups()
        if groups[0]:
            found[groups[0].lower()] = groups[1]
        elif groups[2]:
            found[groups[2].lower()] = groups[3]
        elif groups[4]:
            found[groups[4].lower()] = groups[5]
        else:
            positional = next(g for g in groups[6:] if g is not None)
            found[str(position)] = positional
            position += 1
    return found


def _link(url: str) -> str:
    safe = html_lib.escape(url.strip(), quote=True)
    return f'<p><a href="{safe}">{safe}</a></p>'


class _WordPressConverter:
    def __init__(
        self,
        attachment_url: Callable[[str], str | None] | None,
        protected: list[str],
        options: RichTextOptions,
        log: WarningLog,
    ) -> None:
        self.attachment_url = attachment_url
        self.options = options
        self.log = log
        # Markup made from a shortcode is set aside as a block, so paragraphs form around it.
        self.protected = protected

    def block(self, markup: str) -> str:
        if not markup:
            return ""
        self.protected.append(markup)
        return f"\x00{len(self.protected) - 1}\x00"

    def shortcodes(self, text: str) -> str:
        out: list[str] = []
        position = 0
        while (match := _SHORTCODE.search(text, position)) is not None:
            start, end = match.span()
            out.append(text[position:start])
            if start > 0 and text[start - 1] == "[" and text[end : end + 1] == "]":
                # [[caption]] is WordPress's escape for a literal [caption].
                out[-1] = out[-1][:-1]
                out.append(match.group(0))
                position = end + 1
                continue
            if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_])"):
                out.append(match.group(0))  # array[i], $row[key]: code, not a shortcode
                position = end
                continue
            name = match.group(1).lower()
            raw_attributes = match.group(2) or ""
            inner: str | None = None
            if match.group(3) is None:
                closing = re.compile(rf"\[/{re.escape(match.group(1))}\]", re.I).search(text, end)
                if closing is not None:
                    inner = text[end : closing.start()]
                    end = closing.end()
            replacement = self.replace(name, raw_attributes, inner, match.group(0))
            out.append(match.group(0) if replacement is None else replacement)
            if replacement is None and inner is not None:
                out.append(self.shortcodes(inner) + f"[/{match.group(1)}]")
            position = end
        out.append(text[position:])
        return "".join(out)

    def replace(self, name: str, raw: str, inner: str | None, opening: str) -> str | None:
        if name in ("code", "sourcecode"):
            # Unclosed, "[code]" is prose about code, not a block of it.
            return None if inner is None else self.block(self.code(inner))
        if name not in KNOWN_SHORTCODES:
            if not _is_registered(name, self.options.shortcodes):
                return None  # "[sic]", "[see <a href=...>]": prose in brackets, kept as written
            if inner is not None and inner.strip():
                message = f"removed {excerpt(opening, 60)}, kept its content"
            else:
                message = f"removed {excerpt(opening, 60)}; what it showed on WordPress is lost"
            self.log.add("shortcode_unknown", message)
            return "" if inner is None else self.shortcodes(inner)
        return self.block(self.known(name, _attributes(raw), inner))

    def code(self, inner: str) -> str:
        # Highlighters store the code as written, entities and all; Webflow gets it as text.
        paragraphs, first = code_paragraphs(html_lib.unescape(inner))
        if first:
            self.log.add("code_block", f"code block {excerpt(first, 60)!r} became code paragraphs")
        return paragraphs

    def known(self, name: str, attributes: dict[str, str], inner: str | None) -> str:
        if name in ("caption", "wp_caption"):
            return self.caption(attributes, inner or "")
        if name == "gallery":
            return self.gallery(attributes)
        if name == "playlist":
            self.log.add("playlist_dropped", "[playlist] has no Webflow equivalent")
            return ""
        url = ""
        if name == "embed" or (name in ("youtube", "vimeo") and inner):
            url = (inner or "").strip()
        if not url:
            url = next((attributes[k] for k in _MEDIA_KEYS if attributes.get(k)), "")
        if not url:
            url = attributes.get("url") or attributes.get("0") or ""
        if name in ("youtube", "vimeo") and url and "://" not in url:
            url = (
                f"https://www.youtube.com/watch?v={url}"
                if name == "youtube"
                else f"https://vimeo.com/{url}"
            )
        if not url:
            self.log.add("shortcode_empty", f"[{name}] without a URL was removed")
            return ""
        urls = video_urls(url)
        if urls is not None:
            self.log.add("video_embedded", f"[{name}] {excerpt(url, 60)} became a Webflow video")
            return video_figure(*urls)
        return _link(url)

    def caption(self, attributes: dict[str, str], inner: str) -> str:
        inner = self.shortcodes(inner)
        match = _CAPTIONED.match(inner)
        if match is None:
            text = attributes.get("caption", "").strip() or inner.strip()
            return f"<p>{text}</p>" if text else ""
        image, text = match.group(1), match.group(2).strip()
        text = text or attributes.get("caption", "").strip()
        caption = f"<figcaption>{text}</figcaption>" if text else ""
        return f"<figure>{image}{caption}</figure>"

    def gallery(self, attributes: dict[str, str]) -> str:
        ids = [
            i.strip() for i in (attributes.get("ids") or attributes.get("include") or "").split(",")
        ]
        ids = [i for i in ids if i]
        if not ids:
            self.log.add(
                "gallery_unresolved",
                "[gallery] without ids (the post's attached images) was removed",
            )
            return ""
        if self.attachment_url is None:
            self.log.add(
                "gallery_unresolved",
                f"[gallery] of {len(ids)} images removed: no attachment lookup",
            )
            return ""
        figures: list[str] = []
        unresolved: list[str] = []
        for attachment_id in ids:
            url = self.attachment_url(attachment_id)
            if url:
                src = html_lib.escape(url, quote=True)
                figures.append(f'<figure><img src="{src}" alt=""></figure>')
            else:
                unresolved.append(attachment_id)
        if unresolved:
            self.log.add(
                "gallery_unresolved",
                excerpt("no URL for attachment ids " + ", ".join(unresolved)),
            )
        return "".join(figures)


def _autop(text: str) -> str:
    """WordPress's wpautop, simplified: blank lines make paragraphs, single newlines <br>."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BLOCK_OPEN.sub(r"\n\n\1", text)
    text = _BLOCK_CLOSE.sub(r"\1\n\n", text)
    text = re.sub(r"(\x00\d+\x00)", r"\n\n\1\n\n", text)
    chunks = [chunk.strip() for chunk in re.split(r"\n\s*\n", text)]
    out: list[str] = []
    for chunk in chunks:
        if not chunk:
            continue
        if _STARTS_BLOCK.match(chunk):
            out.append(chunk)
        else:
            out.append("<p>" + re.sub(r"\s*\n\s*", "<br>\n", chunk) + "</p>")
    return "\n".join(out)


#: The warning of a link to the old site that names no item, and its message before the link.
OLD_SITE_LINK: Final = "old_site_link"
OLD_SITE_LINK_TEXT: Final = "link to the old site with no item: "


class _OldSiteLinks:
    """Rewrites a body's links to the old site, noting those that name no item of the job."""

    def __init__(self, links: LinkMap) -> None:
        self.links = links
        self.unmapped: list[str] = []

    def __call__(self, href: str) -> str:
        resolved = self.links.resolve(href)
        if resolved is None:
            return href
        if resolved.href is None:
            # Kept (the old site may stay up, or get a redirect of its own) and named.
            if href not in self.unmapped:
                self.unmapped.append(href)
            return href
        return resolved.href

    def warn(self, log: WarningLog) -> None:
        # A warning per link (not folded by kind): each is a link a user fixes or redirects.
        for href in self.unmapped:
            log.add_each(OLD_SITE_LINK, OLD_SITE_LINK_TEXT + href)


def wordpress_to_html(
    content: str,
    *,
    base_url: str | None = None,
    attachment_url: Callable[[str], str | None] | None = None,
    options: RichTextOptions | None = None,
    links: LinkMap | None = None,
) -> RichTextResult:
    """WordPress post content (classic or block editor) as Webflow rich text; with ``links``,
    links to the old site's own pages point at their items on Webflow."""
    options = options or RichTextOptions()
    log = WarningLog()
    has_blocks = "<!-- wp:" in content
    text = _BLOCK_COMMENT.sub("", content)
    protected: list[str] = []

    def protect(match: re.Match[str]) -> str:
        protected.append(match.group(0))
        # <pre> is a block of its own for wpautop; inline <code> stays inside its paragraph.
        mark = "\x00" if match.group(1).lower() != "code" else "\x01"
        return f"{mark}{len(protected) - 1}{mark}"

    text = _PROTECTED.sub(protect, text)
    converter = _WordPressConverter(attachment_url, protected, options, log)
    text = converter.shortcodes(text)
    if not has_blocks:
        text = _autop(text)
    # Shortcode output can hold protected <code>, so restore until nothing is left to restore.
    for _ in range(4):
        restored = _PLACEHOLDER.sub(lambda m: protected[int(m.group(2))], text)
        if restored == text:
            break
        text = restored
    text = normalise_for_webflow(text, options, log)
    rewrite = _OldSiteLinks(links) if links is not None else None
    cleaned = sanitize_html(text, base_url=base_url, links=rewrite)
    if rewrite is not None:
        rewrite.warn(log)
    cleaned = re.sub(r"<p>\s*</p>", "", cleaned)
    # Dropped scripts and comments leave blank lines behind (code blocks are paragraphs now).
    cleaned = _BLANK_BETWEEN_TAGS.sub(">\n<", cleaned).strip()
    return RichTextResult(cleaned, log.warnings())
