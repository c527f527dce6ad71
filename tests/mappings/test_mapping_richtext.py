"""Rich text from WordPress and Markdown: what Webflow keeps, nothing unsafe, nothing lost."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from flowport.mappings.richtext import (
    KNOWN_SHORTCODES,
    markdown_to_html,
    sanitize_html,
    wordpress_to_html,
)
from tests.conftest import ACCEPTANCE, require_shared

THEME_UNIT_TEST = ACCEPTANCE / "wxr-theme-unit-test"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
BASE = "https://wpthemetestdata.example.org/"


def convert(content: str, **options: object) -> tuple[str, list[str]]:
    result = wordpress_to_html(content, **options)  # type: ignore[arg-type]
    return result.html, [kind for kind, _ in result.warnings]


class TestWordPressContent:
    def test_gutenberg_block_comments_are_removed(self) -> None:
        html, warnings = convert(
            '<!-- wp:paragraph {"align":"center"} -->\n<p class="has-text-align-center">Hi</p>\n'
            "<!-- /wp:paragraph -->\n\n<!-- wp:separator /-->\n"
            '<!-- wp:latest-posts {"postsToShow":3} /-->'
        )
        assert html == "<p>Hi</p>"
        assert warnings == []

    def test_caption_becomes_a_figure_with_its_caption(self) -> None:
        html, _ = convert(
            '[caption id="attachment_754" align="alignnone" width="604"]<a href="https://x.example.com/big.jpg">'
            '<img class="wp-image-754" src="https://x.example.com/a.jpg?w=604" alt="Bell on Wharf" '
            'width="604" /></a> Bell on wharf in <em>San Francisco</em>[/caption]'
        )
        assert html == (
            '<figure><a href="https://x.example.com/big.jpg">'
            '<img src="https://x.example.com/a.jpg?w=604" alt="Bell on Wharf"></a>'
            "<figcaption>Bell on wharf in <em>San Francisco</em></figcaption></figure>"
        )

    def test_old_style_caption_attribute_is_used(self) -> None:
        html, _ = convert(
            '[caption caption="From the attribute"]<img src="https://x.example.com/a.jpg">[/caption]'
        )
        assert html == (
            '<figure><img src="https://x.example.com/a.jpg">'
            "<figcaption>From the attribute</figcaption></figure>"
        )

    def test_gallery_uses_the_attachment_lookup(self) -> None:
        urls = {"770": "https://x.example.com/770.jpg", "771": "https://x.example.com/771.jpg"}
        html, warnings = convert(
            'Before\n\n[gallery columns=2 ids="770,771,999"]\n\nAfter', attachment_url=urls.get
        )
        assert html == (
            "<p>Before</p>\n"
            '<figure><img src="https://x.example.com/770.jpg" alt=""></figure>'
            '<figure><img src="https://x.example.com/771.jpg" alt=""></figure>\n<p>After</p>'
        )
        assert warnings == ["gallery_unresolved"]

    def test_gallery_without_lookup_is_removed_with_a_warning(self) -> None:
        html, warnings = convert('[gallery ids="1,2"]')
        assert html == ""
        assert warnings == ["gallery_unresolved"]

    @pytest.mark.parametrize(
        ("shortcode", "url"),
        [
            (
                "[embed]https://www.youtube.com/watch?v=x[/embed]",
                "https://www.youtube.com/watch?v=x",
            ),
            (
                '[video width="640" src="https://x.example.com/v.mp4"][/video]',
                "https://x.example.com/v.mp4",
            ),
            ('[video mp4="https://x.example.com/v.mp4"]', "https://x.example.com/v.mp4"),
            ("[audio https://x.example.com/blues.mp3]", "https://x.example.com/blues.mp3"),
            ('[audio mp3="https://x.example.com/a.mp3"]', "https://x.example.com/a.mp3"),
            (
                "[youtube https://www.youtube.com/watch?v=abc]",
                "https://www.youtube.com/watch?v=abc",
            ),
            (
                "[youtube=https://www.youtube.com/watch?v=abc]",
                "https://www.youtube.com/watch?v=abc",
            ),
            ('[youtube id="abc"]', ""),
        ],
    )
    def test_media_shortcodes_become_links(self, shortcode: str, url: str) -> None:
        html, warnings = convert(shortcode)
        if url:
            assert html == f'<p><a href="{url}">{url}</a></p>'
            assert warnings == []
        else:
            assert html == ""
            assert warnings == ["shortcode_empty"]

    def test_unknown_shortcodes_are_stripped_keeping_content_and_counted(self) -> None:
        result = wordpress_to_html(
            '[column width="1/2"]Left [button url="/x"]Go[/button][/column] [contact-form-7 id="3"]'
        )
        assert result.html == "<p>Left Go</p>"
        # One warning per kind and field: the first occurrence, and how many more there were.
        assert result.warnings == (
            ("shortcode_unknown", 'removed [column width="1/2"], kept its content (+2)'),
        )

    def test_brackets_in_code_and_prose_are_left_alone(self) -> None:
        content = (
            "Use <code>items[0]</code> and <code>[gallery]</code>, "
            "or array[i] [sic] [edge case].\n\n"
            "<pre>for (i = 0; i &lt; n; i++) { x[i] = [caption]; }\n\n[embed]u[/embed]</pre>"
        )
        html, warnings = convert(content)
        # Webflow's API empties code blocks: the <pre> is sent as paragraphs of code.
        assert html == (
            "<p>Use <code>items[0]</code> and <code>[gallery]</code>, "
            "or array[i] [sic] [edge case].</p>\n"
            "<p><code>for (i = 0; i &lt; n; i++) { x[i] = [caption]; }</code></p>"
            "<p>\u200d</p><p><code>[embed]u[/embed]</code></p>"
        )
        assert warnings == ["code_block"]

    def test_escaped_shortcodes_stay_literal(self) -> None:
        html, _ = convert("Write [[gallery]] to show a gallery.")
        assert html == "<p>Write [gallery] to show a gallery.</p>"

    def test_classic_content_gets_paragraphs_and_line_breaks(self) -> None:
        html, _ = convert(
            "First line\nsame paragraph\n\nSecond\r\n\r\n"
            "<h2>Head</h2>\nAfter head\n<ul>\n<li>a</li>\n</ul>"
        )
        assert html == (
            "<p>First line<br>\nsame paragraph</p>\n<p>Second</p>\n"
            "<h2>Head</h2>\n<p>After head</p>\n"
            "<ul>\n<li>a</li>\n</ul>"
        )

    def test_unsafe_markup_is_removed_and_links_made_absolute(self) -> None:
        html, _ = convert(
            '<p onmouseover="x()" style="color:red">Hi <a href="/about" onclick="y()">us</a>'
            '<img src="wp-content/a.png" onerror="z()"></p><script>alert(1)</script>'
            '<iframe src="https://evil.example.com"></iframe><a href="javascript:alert(1)">j</a>',
            base_url=BASE,
        )
        # An iframe of no known video player is a link to its source (with a warning), not lost.
        assert html == (
            f'<p>Hi <a href="{BASE}about">us</a><img src="{BASE}wp-content/a.png"></p>\n'
            '<p><a href="https://evil.example.com">https://evil.example.com</a></p><p><a>j</a></p>'
        )

    def test_entities_survive(self) -> None:
        html, _ = convert("Fish &amp; chips &#8211; caf&eacute; &lt;tag&gt;")
        assert html == "<p>Fish &amp; chips – café &lt;tag&gt;</p>"


class TestSanitizeAndMarkdown:
    def test_only_webflow_elements_remain(self) -> None:
        html = sanitize_html(
            '<div class="x"><span>a</span><table><tr><td>b</td></tr></table><h3 id="h">c</h3>'
            '<a href="https://x.example.com" target="_blank" rel="nofollow" title="t">d</a></div>'
        )
        assert html == (
            'ab<h3>c</h3><a href="https://x.example.com" target="_blank" title="t">d</a>'
        )

    def test_markdown_renders_and_sanitises(self) -> None:
        html = markdown_to_html(
            "## Hi\n\n- one\n- two\n\n<script>x()</script>\n\n`code`", base_url=BASE
        )
        assert (
            html
            == "<h2>Hi</h2>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n\n<p><code>code</code></p>"
        )


def _theme_unit_test_contents() -> list[tuple[str, str]]:
    require_shared(THEME_UNIT_TEST)
    contents: list[tuple[str, str]] = []
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    for path in sorted(THEME_UNIT_TEST.glob("*.xml")):
        tree = etree.parse(str(path), parser)
        for number, item in enumerate(tree.iter("item")):
            content = item.findtext(f"{{{CONTENT_NS}}}encoded") or ""
            if content.strip():
                contents.append((f"{path.name}#{number} {item.findtext('title')!r}", content))
    return contents


_SHORTCODE_LEFT = re.compile(r"\[/?(?:" + "|".join(sorted(KNOWN_SHORTCODES)) + r")\b")
_EVENT_ATTRIBUTE = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
_IMAGE_FIGURE_IN = re.compile(r"\[caption\b|<figure\b(?:(?!</figure>).)*?<img\b", re.S)
_IMAGE_FIGURE_OUT = re.compile(r"<figure>(?:(?!</figure>).)*?<img\b", re.S)
_VIDEO_FIGURE_STYLE = re.compile(
    r'(?<=<figure class="w-richtext-figure-type-video w-richtext-align-fullwidth") '
    r'style="padding-bottom:56.25%"'
)


@pytest.mark.shared
def test_theme_unit_test_content_comes_out_clean() -> None:
    contents = _theme_unit_test_contents()
    assert len(contents) > 150
    figures_in = figures_out = captions_out = 0
    for where, content in contents:
        html = wordpress_to_html(content, base_url=BASE).html
        # Code samples may quote shortcodes and comments; only what is outside <pre>/<code> counts.
        outside_code = re.sub(r"<(pre|code)\b.*?</\1>", "", html, flags=re.S)
        assert "<!--" not in html, where
        assert not _SHORTCODE_LEFT.search(outside_code), where
        assert "<script" not in html.lower(), where
        assert not _EVENT_ATTRIBUTE.search(html), where
        assert "javascript:" not in html.lower(), where
        # Webflow's own video figure sets its aspect ratio inline; no source style may pass.
        assert "style=" not in _VIDEO_FIGURE_STYLE.sub("", html), where
        # Image figures: a pull quote's, table's or gallery's wrapper <figure> is not one in
        # Webflow (its parts become blocks of their own), so only figures of images count.
        figures_in += len(_IMAGE_FIGURE_IN.findall(content))
        figures_out += len(_IMAGE_FIGURE_OUT.findall(html))
        captions_out += html.count("<figcaption>")
    assert figures_out >= figures_in * 0.9, (figures_in, figures_out)
    assert captions_out >= 12
