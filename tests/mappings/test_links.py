"""Links to the old site, rewritten to their Webflow items: input body -> Webflow HTML + warnings.

The map is built from the theme unit test export's own items (read here with plain lxml: its
permalinks, slugs and post ids), as the runner builds it from the job's records; the bodies are
the export's real ones where it holds the construct.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from flowport.mappings import LinkMap
from flowport.mappings.richtext import wordpress_to_html
from tests.mappings.test_richtext_webflow import CONTENT_NS, THEME_UNIT_TEST, _items

SITE = "https://wpthemetestdata.wordpress.com"
PREVIEW = THEME_UNIT_TEST.with_name("theme-preview.xml")
GREEK = "/pages/%ce%b5%cf%80%ce%af%cf%80%ce%b5%ce%b4%ce%bf-2"


def _wp(item: etree._Element, name: str) -> str:
    for child in item:
        if isinstance(child.tag, str) and child.tag.endswith("}" + name):
            return (child.text or "").strip()
    return ""


def site_map(path: Path, site: str) -> LinkMap:
    """Every published post and page of the export: permalink and id -> /posts|pages/<slug>."""
    links = LinkMap(site)
    for item in _items(path):
        kind, status = _wp(item, "post_type"), _wp(item, "status")
        # theme-preview.xml names no slugs nor ids: its links (/?p=8) carry the id.
        slug = _wp(item, "post_name") or (item.findtext("title") or "").lower()
        if kind in ("post", "page") and status == "publish" and slug:
            ids = [("post", _wp(item, "post_id"))] if _wp(item, "post_id") else []
            links.add(item.findtext("link") or "", f"/{kind}s/{slug}", ids)
    return links


def body_with(path: Path, href: str) -> tuple[str, str]:
    """(title, content) of the first item whose content links to ``href``."""
    for item in _items(path):
        content = item.findtext(f"{{{CONTENT_NS}}}encoded") or ""
        if f'href="{href}"' in content:
            return item.findtext("title") or "", content
    raise AssertionError(f"no body links to {href}")


@pytest.fixture(scope="module")
def theme_links() -> LinkMap:
    return site_map(THEME_UNIT_TEST, SITE)


def convert(content: str, links: LinkMap, base: str = SITE) -> tuple[str, list[tuple[str, str]]]:
    result = wordpress_to_html(content, base_url=base + "/", links=links)
    return result.html, list(result.warnings)


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


def test_a_permalink_with_another_day_reaches_the_post_by_its_slug(theme_links: LinkMap) -> None:
    # "Block category: Layout Elements" links /2018/11/03/block-button/; WordPress dates the
    # post 11/02 (time zones) and finds it by its slug.
    link = f"{SITE}/2018/11/03/block-button/"
    _, content = body_with(THEME_UNIT_TEST, link)
    html, warnings = convert(content, theme_links)
    assert link not in html
    assert "/posts/block-button" in hrefs(html)
    assert not [w for w in warnings if w[0] == "old_site_link"]


def test_attachment_pages_are_kept_and_named_one_warning_each(theme_links: LinkMap) -> None:
    link = f"{SITE}/2010/09/10/post-format-gallery/img_0767/"
    _, content = body_with(THEME_UNIT_TEST, link)
    html, warnings = convert(content, theme_links)
    old = sorted({h for h in hrefs(html) if h.startswith(SITE + "/")})
    assert link in old
    named = sorted(
        m.removeprefix("link to the old site with no item: ")
        for k, m in warnings
        if k == "old_site_link"
    )
    assert named == old


def test_uploads_on_the_files_host_are_not_the_old_site(theme_links: LinkMap) -> None:
    link = "https://wpthemetestdata.files.wordpress.com/2012/12/unicorn-wallpaper.jpg"
    _, content = body_with(THEME_UNIT_TEST, link)
    html, warnings = convert(content, theme_links)
    assert link in hrefs(html)
    assert all(link not in m for _, m in warnings)


def test_plain_permalinks_are_shortlinks_by_post_id() -> None:
    # theme-preview.xml: a plain-permalink site whose "Continue Reading" links are /?p=<id>.
    links = site_map(PREVIEW, "https://wp-themes.com")
    description = next(
        item.findtext("description") or ""
        for item in _items(PREVIEW)
        if 'href="https://wp-themes.com/?p=8"' in (item.findtext("description") or "")
    )
    html, warnings = convert(description, links, "https://wp-themes.com")
    assert hrefs(html) == ["/posts/html"]
    assert warnings == []


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        # The same post however the link is written: scheme, www, case, slashes, fragment.
        (
            f"{SITE}/2013/01/11/markup-html-tags-and-formatting/",
            "/posts/markup-html-tags-and-formatting",
        ),
        (
            "http://www.wpthemetestdata.wordpress.com/2013/01/11/markup-html-tags-and-formatting",
            "/posts/markup-html-tags-and-formatting",
        ),
        (
            f"{SITE}//2013/01/11/Markup-HTML-Tags-and-Formatting/#comments",
            "/posts/markup-html-tags-and-formatting#comments",
        ),
        ("/2013/01/11/markup-html-tags-and-formatting/", "/posts/markup-html-tags-and-formatting"),
        # Shortlinks by post id: ?p= for any post, ?page_id= for pages.
        (f"{SITE}/?p=1178", "/posts/markup-html-tags-and-formatting"),
        (f"{SITE}/?page_id=2", "/pages/about"),
        # A percent-encoded Greek slug under its parent page, as the export writes it (with a
        # doubled slash), in capitals, and raw as an editor pastes it.
        (f"{SITE}/greek/%ce%b5%cf%80%ce%af%cf%80%ce%b5%ce%b4%ce%bf-2/", GREEK),
        (f"{SITE}/greek/%CE%B5%CF%80%CE%AF%CF%80%CE%B5%CE%B4%CE%BF-2/", GREEK),
        (f"{SITE}/greek/επίπεδο-2/", GREEK),
        # Elsewhere: left alone, no warning.
        ("https://wordpress.org/", "https://wordpress.org/"),
        (
            f"{SITE}/wp-content/uploads/2013/03/soworthloving-wallpaper.jpg",
            f"{SITE}/wp-content/uploads/2013/03/soworthloving-wallpaper.jpg",
        ),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        ("#top", "#top"),
    ],
)
def test_links_to_the_old_site_by_every_spelling(
    theme_links: LinkMap, href: str, expected: str
) -> None:
    html, warnings = convert(f'<p><a href="{href}">x</a></p>', theme_links)
    assert hrefs(html) == [expected]
    assert warnings == []


def test_an_old_page_that_is_no_item_is_kept_and_named(theme_links: LinkMap) -> None:
    html, warnings = convert(f'<p><a href="{SITE}/2013/01/">January</a></p>', theme_links)
    assert hrefs(html) == [f"{SITE}/2013/01/"]
    assert warnings == [("old_site_link", f"link to the old site with no item: {SITE}/2013/01/")]


def test_without_a_map_links_stay_as_they_were() -> None:
    html = wordpress_to_html(f'<p><a href="{SITE}/?p=1177">x</a></p>', base_url=SITE + "/").html
    assert hrefs(html) == [f"{SITE}/?p=1177"]
