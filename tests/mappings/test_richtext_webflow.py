"""Rich text that survives Webflow: each construct, input HTML -> Webflow HTML + warnings.

The bodies are real ones from the shared WordPress fixtures where those hold the construct
(read from ../shared: skipped when it is absent, a failure under CI=true); a construct no
fixture holds (an old YouTube <object>, an irc: link) is written out here.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from lxml import etree

from flowport.base.errors import ConfigError
from flowport.mappings import MappingWarning
from flowport.mappings.richtext import (
    KNOWN_SHORTCODES,
    RichTextOptions,
    sanitize_html,
    wordpress_to_html,
)
from flowport.mappings.webflow_html import top_level_bare_text, video_figure, video_urls
from tests.mappings.mapping_helpers import compile_spec, field, mapped, schema

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "acceptance-data"
THEME_UNIT_TEST = SHARED / "wxr-theme-unit-test" / "themeunittestdata.wordpress.xml"
LIBSYN_EXPORT = SHARED / "wxr-ghost-migrate-fixtures" / "has-audio-enclosure-with-libsyn-embed.xml"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
WP_NS = "https://wordpress.org/export/1.2/"
YOUTUBE_PLAYER = "https://www.youtube.com/embed/ex8fMxXJDJw"
YOUTUBE_PAGE = "https://www.youtube.com/watch?v=ex8fMxXJDJw"


def require_shared(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing, and CI=true forbids skipping")
        pytest.skip(f"{path} is absent (../shared not mounted)")
    return path


def _items(path: Path) -> list[Any]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return list(etree.parse(str(require_shared(path)), parser).iter("item"))


def body(path: Path, title: str, part: str | None = None) -> str:
    """The content of the post titled ``title``; with ``part``, the piece that pattern finds."""
    for item in _items(path):
        if item.findtext("title") == title:
            content = item.findtext(f"{{{CONTENT_NS}}}encoded") or ""
            if part is None:
                return content
            found = re.search(part, content, re.S)
            assert found is not None, (title, part)
            return found.group(0)
    raise AssertionError(f"no post titled {title!r} in {path.name}")


def oembed_iframes(path: Path) -> list[str]:
    """The players WordPress cached for the export's embeds (the _oembed_* post meta)."""
    found: list[str] = []
    for meta in etree.parse(str(require_shared(path))).iter(f"{{{WP_NS}}}postmeta"):
        key = meta.findtext(f"{{{WP_NS}}}meta_key") or ""
        value = meta.findtext(f"{{{WP_NS}}}meta_value") or ""
        if key.startswith("_oembed_") and "<iframe" in value:
            found.append(value)
    return found


def convert(content: str, **options: Any) -> tuple[str, dict[str, str]]:
    result = wordpress_to_html(content, **options)
    assert top_level_bare_text(result.html) == [], result.html
    kinds = [kind for kind, _ in result.warnings]
    assert len(kinds) == len(set(kinds)), "one warning per kind"
    return result.html, dict(result.warnings)


class TestTopLevelBareText:
    @pytest.mark.parametrize(
        ("html", "bare"),
        [
            ("<p>a</p>\n<h2>b</h2>\n", []),
            ("a<p>b</p>", ["a"]),
            ("<p>a</p> tail", ["tail"]),
            ("<strong>bold</strong><p>b</p>", ["bold"]),
            ("<ul><li>x</li></ul><span>y</span>", ["y"]),
            (video_figure(YOUTUBE_PLAYER, YOUTUBE_PAGE), []),
            ('<div data-rt-embed-type="true"><table><tr><td>c</td></tr></table></div>', []),
            ("<div>in a div</div>", ["in a div"]),
            ("", []),
        ],
    )
    def test_finds_text_outside_blocks(self, html: str, bare: list[str]) -> None:
        assert top_level_bare_text(html) == bare


class TestTables:
    def test_rows_become_paragraphs_with_header_cells_bold(self) -> None:
        table = body(THEME_UNIT_TEST, "Page Markup And Formatting", r"<table>.*?</table>")
        html, warnings = convert(table)
        assert html == (
            "<p><strong>Employee</strong> | <strong>Salary</strong></p>"
            '<p><a href="http://example.com/">Jane</a> | $1 | Because that\'s all Steve Jobs'
            " needed for a salary.</p>"
            '<p><a href="http://example.com">John</a> | $100K | For all the blogging he does.</p>'
            '<p><a href="http://example.com/">Jane</a> | $100M | Pictures are worth a thousand'
            " words, right? So Tom x 1,000.</p>"
            '<p><a href="http://example.com/">Jane</a> | $100B | With hair like that?! Enough'
            " said...</p>"
        )
        assert warnings == {
            "table_flattened": "table 'Employee | Salary' became one paragraph per row"
        }

    def test_block_editor_table_keeps_its_caption_as_a_paragraph(self) -> None:
        content = body(
            THEME_UNIT_TEST, "WP 6.1 Text category blocks", r"<!-- wp:table.*?<!-- /wp:table -->"
        )
        html, warnings = convert(content)
        assert html == (
            "<p>table cell | table cell two</p><p>table cell three | table cell four</p>"
            "<p>Table caption</p>"
        )
        assert set(warnings) == {"table_flattened"}

    def test_embed_mode_keeps_the_grid_in_a_custom_code_embed(self) -> None:
        table = body(THEME_UNIT_TEST, "Page Markup And Formatting", r"<table>.*?</table>")
        html, warnings = convert(table, options=RichTextOptions(tables="embed"))
        assert html.startswith('<div data-rt-embed-type="true"><table>')
        assert html.endswith("</table></div>")
        assert '<td><a href="http://example.com/">Jane</a></td>' in html
        assert "class=" not in html
        assert set(warnings) == {"table_kept_html"}
        # The field's own sanitizer runs on the result again: the embed must come through.
        assert sanitize_html(html) == html

    def test_a_script_inside_an_embedded_table_is_removed(self) -> None:
        html, _ = convert(
            "<table><tr><td>a<script>x()</script></td></tr></table>",
            options=RichTextOptions(tables="embed"),
        )
        assert html == (
            '<div data-rt-embed-type="true"><table><tbody><tr><td>a</td></tr></tbody></table></div>'
        )

    def test_code_in_an_embedded_table_keeps_its_lines(self) -> None:
        content = "<table><tr><td><pre>x = 1\n  y = 2</pre></td><td>b</td></tr></table>"
        html, warnings = convert(content, options=RichTextOptions(tables="embed"))
        assert html == (
            '<div data-rt-embed-type="true"><table><tbody><tr><td><pre>x = 1\n  y = 2</pre></td>'
            "<td>b</td></tr></tbody></table></div>"
        )
        assert list(warnings) == ["table_kept_html"]
        html, warnings = convert(content)
        assert html == "<p>x = 1 y = 2 | b</p>"
        assert list(warnings) == ["table_flattened"]


class TestDivsAndBareText:
    def test_block_editor_buttons_in_divs_stay_separate_paragraphs(self) -> None:
        html, _ = convert(body(THEME_UNIT_TEST, "Block: Button"))
        assert "<p><a>Left aligned<br></a></p>" in html
        assert "<p><a>Rounded</a></p>\n<p><a>Outline<br></a></p>" in html

    def test_custom_html_div_becomes_a_paragraph(self) -> None:
        content = body(THEME_UNIT_TEST, "Block category: Formatting", r"<!-- wp:html -->.*?-->")
        html, warnings = convert(content + "after")
        assert html == (
            "<p>The custom HTML block lets you put HTML that isn't configured like blocks in it."
            " (this div has a width of 45%)</p>\n<p>after</p>"
        )
        assert warnings == {}

    def test_div_paragraphs_are_not_merged(self) -> None:
        html, warnings = convert(
            "<!-- wp:html --><div>One</div><div>Two <em>b</em></div>"
            "<div><div>Three</div>four</div><!-- /wp:html -->"
        )
        assert html == "<p>One</p><p>Two <em>b</em></p><p>Three</p><p>four</p>"
        assert warnings == {}

    def test_inline_runs_between_blocks_get_paragraphs(self) -> None:
        html, _ = convert("<!-- wp:x -->Lead <b>text</b><h2>H</h2>tail<!-- /wp:x -->")
        assert html == "<p>Lead <b>text</b></p><h2>H</h2><p>tail</p>"

    def test_a_quote_citation_is_a_paragraph_of_the_quote(self) -> None:
        content = body(
            THEME_UNIT_TEST, "WP 6.1 Text category blocks", r"<!-- wp:quote -->.*?/wp:quote -->"
        )
        html, _ = convert(content)
        assert html == "<blockquote>\n<p>Quote block</p>\n<p>citation</p></blockquote>"


class TestVideosAndEmbeds:
    def test_block_editor_embeds_become_videos_or_links(self) -> None:
        html, warnings = convert(body(THEME_UNIT_TEST, "Block category: Embeds"))
        assert html.count('data-rt-type="video"') == 1
        assert video_figure(YOUTUBE_PLAYER, YOUTUBE_PAGE) + "<p>YouTube</p>" in html
        assert (
            '<p><a href="https://twitter.com/WordPress/status/1057136472321613824">'
            "https://twitter.com/WordPress/status/1057136472321613824</a></p>"
            "<p>Twitter,&nbsp; wide width</p>"
        ) in html
        assert warnings == {
            "embed_linked": "embed of https://twitter.com/WordPress/status/1057136472321613824 "
            "became a link: Webflow plays only known video players (+3)",
            "video_embedded": "embed of https://youtu.be/ex8fMxXJDJw became a Webflow video",
        }

    def test_cached_oembed_players_become_webflow_videos(self) -> None:
        players = oembed_iframes(THEME_UNIT_TEST)
        assert len(players) >= 3
        for player in players:
            html, warnings = convert(player)
            assert html.startswith('<figure class="w-richtext-figure-type-video'), player
            assert "<script" not in html
            assert set(warnings) == {"video_embedded"}
        html, _ = convert("\n".join(players))
        assert 'src="https://videopress.com/embed/r0l8GmDi"' in html
        assert f'src="{YOUTUBE_PLAYER}"' in html

    def test_unknown_player_becomes_a_link_named_in_a_warning(self) -> None:
        content = body(LIBSYN_EXPORT, "My Podcast Episode")
        html, warnings = convert(content)
        assert html == (
            '<p><a href="https://html5-player.libsyn.com/player/id/12345/">My Podcast Episode'
            "</a></p>\n<p>This is the episode description.</p>"
        )
        assert warnings == {
            "embed_linked": "<iframe> https://html5-player.libsyn.com/player/id/12345/ became "
            "a link: Webflow plays only known video players"
        }

    def test_old_youtube_object_embed_becomes_a_video(self) -> None:
        # YouTube's embed code until 2010: Flash, an <object> with the /v/ player inside.
        html, warnings = convert(
            '<p>Watch:</p><p><object width="425" height="344"><param name="movie" '
            'value="http://www.youtube.com/v/dQw4w9WgXcQ&hl=en&fs=1"></param>'
            '<param name="allowFullScreen" value="true"></param><embed '
            'src="http://www.youtube.com/v/dQw4w9WgXcQ&hl=en&fs=1" '
            'type="application/x-shockwave-flash" width="425" height="344"></embed></object></p>'
        )
        assert html == "<p>Watch:</p>\n" + video_figure(
            "https://www.youtube.com/embed/dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        )
        assert list(warnings) == ["video_embedded"]

    def test_a_player_inside_a_paragraph_splits_it(self) -> None:
        html, _ = convert(
            '<p>Before <iframe src="https://player.vimeo.com/video/76979871?h=8272103f6e" '
            'title="The New Vimeo Player"></iframe> after</p>'
        )
        assert html == (
            "<p>Before</p>"
            + video_figure(
                "https://player.vimeo.com/video/76979871",
                "https://vimeo.com/76979871",
                "The New Vimeo Player",
            )
            + "<p>after</p>"
        )

    def test_a_player_in_a_list_item_or_a_link_is_moved_to_the_top_level(self) -> None:
        vimeo = video_figure(
            "https://player.vimeo.com/video/76979871", "https://vimeo.com/76979871"
        )
        html, _ = convert(
            '<!-- wp:list --><ul><li>one</li><li>two <iframe src="https://vimeo.com/76979871">'
            "</iframe> more</li><li>three</li></ul><!-- /wp:list -->"
        )
        assert (
            html == f"<ul><li>one</li><li>two</li></ul>{vimeo}<ul><li>more</li><li>three</li></ul>"
        )
        html, _ = convert(
            '<p><a href="https://x.example.com">see <iframe src="https://vimeo.com/76979871">'
            "</iframe></a> end</p>"
        )
        assert html == f'<p><a href="https://x.example.com">see</a></p>{vimeo}<p>end</p>'

    def test_a_player_without_a_source_is_named_as_removed(self) -> None:
        html, warnings = convert("<p>Gone: <iframe></iframe></p>")
        assert html == "<p>Gone: </p>"
        assert list(warnings) == ["embed_dropped"]

    def test_self_hosted_video_becomes_a_link(self) -> None:
        html, warnings = convert(
            '<!-- wp:video --><figure class="wp-block-video"><video controls '
            'src="https://x.example.com/v.mp4"></video><figcaption>Clip</figcaption></figure>'
            "<!-- /wp:video -->"
        )
        assert html == (
            '<p><a href="https://x.example.com/v.mp4">https://x.example.com/v.mp4</a></p>'
            "<p>Clip</p>"
        )
        assert list(warnings) == ["embed_linked"]

    @pytest.mark.parametrize(
        ("url", "player"),
        [
            ("https://youtu.be/ex8fMxXJDJw", YOUTUBE_PLAYER),
            ("https://www.youtube.com/watch?v=ex8fMxXJDJw&t=3", YOUTUBE_PLAYER),
            ("//www.youtube-nocookie.com/embed/ex8fMxXJDJw?rel=0", YOUTUBE_PLAYER),
            ("http://www.youtube.com/v/ex8fMxXJDJw&hl=en", YOUTUBE_PLAYER),
            ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871"),
            ("https://videopress.com/embed/r0l8GmDi?hd=0", "https://videopress.com/embed/r0l8GmDi"),
            ("https://www.dailymotion.com/video/x7tgad0", "https://www.dailymotion.com/embed/video/x7tgad0"),
            ("https://www.youtube.com/watch?v=x", None),
            ("https://evil.example.com/embed/ex8fMxXJDJw", None),
            ("javascript:alert(1)//youtube.com/embed/ex8fMxXJDJw", None),
        ],
    )  # fmt: skip
    def test_known_players(self, url: str, player: str | None) -> None:
        urls = video_urls(url)
        assert (urls[0] if urls else None) == player

    def test_the_sanitizer_keeps_a_video_figure_only_for_a_known_player(self) -> None:
        figure = video_figure(YOUTUBE_PLAYER, YOUTUBE_PAGE, 'A "title"')
        assert sanitize_html(figure) == figure
        smuggled = figure.replace(YOUTUBE_PLAYER, "https://evil.example.com/x")
        assert sanitize_html(smuggled) == ""
        assert sanitize_html('<iframe src="https://www.youtube.com/embed/ex8fMxXJDJw">') == ""


class TestCode:
    def test_code_and_preformatted_blocks_become_code_paragraphs(self) -> None:
        content = body(
            THEME_UNIT_TEST, "Block category: Formatting", r"<!-- wp:code -->.*?/wp:code -->"
        )
        html, warnings = convert(content)
        assert html == (
            "<p><code>The code block starts with</code></p>"
            "<p><code>&lt;!-- wp:code --&gt;</code></p>"
            "<p><code>&lt;?php echo 'Hello World'; ?&gt;</code></p>"
        )
        assert warnings == {
            "code_block": "code block 'The code block starts with' became code paragraphs"
        }

    def test_line_breaks_blank_lines_and_alignment_survive(self) -> None:
        content = body(
            THEME_UNIT_TEST,
            "Block category: Formatting",
            r"<!-- wp:preformatted -->.*?/wp:preformatted -->",
        )
        html, _ = convert(content)
        assert html.startswith(
            "<p><code>The preformatted block.</code></p><p>\u200d</p>"
            "<p><code>The Road Not Taken</code></p>"
        )
        assert (
            "<p><code>And sorry I could not travel both &nbsp; &nbsp; &nbsp; &nbsp; &nbsp;(\\_/)"
            "</code></p>"
        ) in html
        assert "<pre" not in html

    @pytest.mark.parametrize("name", ["code", "sourcecode"])
    def test_highlighter_shortcodes_become_code_paragraphs(self, name: str) -> None:
        html, warnings = convert(
            f'Intro\n\n[{name} language="python"]\nif a &lt; b:\n\tprint("[x]")\n[/{name}]'
        )
        assert html == (
            "<p>Intro</p>\n<p><code>if a &lt; b:</code></p>"
            '<p><code>&nbsp;&nbsp;&nbsp;&nbsp;print("[x]")</code></p>'
        )
        assert warnings == {"code_block": "code block 'if a < b:' became code paragraphs"}

    def test_an_unclosed_code_shortcode_is_prose(self) -> None:
        html, warnings = convert("Wrap it in [code] tags.")
        assert html == "<p>Wrap it in [code] tags.</p>"
        assert warnings == {}


class TestLinks:
    @pytest.mark.parametrize(
        "href",
        [
            "irc://irc.libera.chat/#wordpress",
            "tel:+33123456789",
            "mailto:editor@x.example.com",
            "sms:+33123456789",
            "https://x.example.com/a?b=1",
        ],
    )
    def test_schemes_browsers_follow_keep_their_address(self, href: str) -> None:
        html, warnings = convert(f'<p><a href="{href}">here</a></p>')
        assert html == f'<p><a href="{href.replace("&", "&amp;")}">here</a></p>'
        assert warnings == {}

    def test_a_dropped_scheme_names_the_link(self) -> None:
        html, warnings = convert(
            '<p><a href="javascript:alert(1)">Click me</a> <a href="data:text/html,x">d</a></p>'
        )
        assert html == "<p><a>Click me</a> <a>d</a></p>"
        assert warnings == {
            "link_scheme_dropped": "link 'Click me' to 'javascript:alert(1)' lost its address: "
            "javascript: is not kept (+1)"
        }


class TestShortcodes:
    def test_bracketed_prose_with_a_link_is_kept_verbatim(self) -> None:
        html, warnings = convert(
            'As the docs say [see <a href="https://x.example.com/?page=2">page two</a>], '
            "and [note=important] or [Ed. note: x=1]."
        )
        assert html == (
            '<p>As the docs say [see <a href="https://x.example.com/?page=2">page two</a>], '
            "and [note=important] or [Ed. note: x=1].</p>"
        )
        assert warnings == {}

    def test_a_plugin_shortcode_without_content_says_its_output_is_lost(self) -> None:
        html, warnings = convert('Write to us: [contact-form-7 id="3" title="Contact"]')
        assert html == "<p>Write to us:</p>"
        assert warnings == {
            "shortcode_unknown": 'removed [contact-form-7 id="3" title="Contact"]; what it '
            "showed on WordPress is lost"
        }

    def test_a_job_names_its_own_shortcodes(self) -> None:
        content = "[my_box color=red]Inside[/my_box] [other x=1]"
        html, warnings = convert(content)
        assert html == "<p>[my_box color=red]Inside[/my_box] [other x=1]</p>"
        assert warnings == {}
        html, warnings = convert(content, options=RichTextOptions(shortcodes=frozenset({"my_box"})))
        assert html == "<p>Inside [other x=1]</p>"
        assert warnings == {"shortcode_unknown": "removed [my_box color=red], kept its content"}


class TestTheTransformOption:
    TARGET = schema(field("body", "RichText"))

    def test_options_reach_the_converter_and_warnings_the_item(self) -> None:
        mapper = compile_spec(
            {
                "fields": {
                    "name": "title",
                    "slug": "slug",
                    "body": {
                        "source": "content",
                        "transforms": [{"richtext_wordpress": {"tables": "embed"}}],
                    },
                }
            },
            self.TARGET,
        )
        item = mapped(
            mapper,
            {
                "title": "T",
                "slug": "t",
                "content": "<table><tr><td>a</td></tr></table><pre>x</pre>",
            },
        )
        assert item.field_data["body"] == (
            '<div data-rt-embed-type="true"><table><tbody><tr><td>a</td></tr></tbody></table>'
            "</div><p><code>x</code></p>"
        )
        assert set(item.warnings) == {
            MappingWarning(
                "body", "table_kept_html", "table 'a' kept as HTML in a custom-code embed"
            ),
            MappingWarning("body", "code_block", "code block 'x' became code paragraphs"),
        }

    @pytest.mark.parametrize(
        "argument",
        [{"tables": "grid"}, {"tabels": "rows"}, {"shortcodes": "my_box"}, "rows"],
    )
    def test_a_bad_option_is_refused_when_compiling(self, argument: Any) -> None:
        with pytest.raises(ConfigError, match="richtext_wordpress"):
            compile_spec(
                {
                    "fields": {
                        "name": "title",
                        "slug": "slug",
                        "body": {
                            "source": "content",
                            "transforms": [{"richtext_wordpress": argument}],
                        },
                    }
                },
                self.TARGET,
            )


# --- Every post of the theme unit test -----------------------------------------------------

_KNOWN_SHORTCODE = re.compile(r"\[/?(?:" + "|".join(sorted(KNOWN_SHORTCODES)) + r")\b[^\]]*\]")
_EMBEDS = re.compile(r"<(?:iframe|object|embed|video|audio)\b|wp-block-embed\b", re.I)
_EMBED_KINDS = {"video_embedded", "embed_linked", "embed_dropped"}


_BLOCK_EDGE = re.compile(
    r"</?(?:p|h[1-6]|div|li|ul|ol|dl|dd|dt|td|th|tr|table|br|hr|figure|figcaption|blockquote"
    r"|pre|section)\b[^>]*>",
    re.I,
)


def _words(html: str) -> Counter[str]:
    html = re.sub(r"<!--.*?-->|<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    if not html.strip():
        return Counter()
    # A block's edge separates words ("<h2>a</h2><p>b</p>" is two), an inline tag's does not.
    html = _BLOCK_EDGE.sub(" ", html)
    text = lxml.html.fragment_fromstring(html, create_parent="div").text_content()
    return Counter(re.findall(r"\w+", text))


def assert_whole_or_warned(where: str, content: str) -> set[str]:
    """No bare text at the top level; an embed, table or code block changed only with a
    warning; no words lost without one. Returns the kinds of warning given."""
    result = wordpress_to_html(content)
    kinds = {kind for kind, _ in result.warnings}
    assert top_level_bare_text(result.html) == [], where
    if _EMBEDS.search(content):
        assert kinds & _EMBED_KINDS, f"{where}: an embed changed without a warning"
    # A body that lost words (beyond the known shortcodes' own tags) must say so.
    lost = _words(_KNOWN_SHORTCODE.sub(" ", content)) - _words(result.html)
    if lost:
        assert result.warnings, f"{where}: lost {sorted(lost)[:5]} silently"
    if re.search(r"<(?:pre|table)\b", content):
        assert kinds & {"code_block", "table_flattened"}, where
    return kinds


def _bodies(path: Path) -> list[tuple[str, str]]:
    bodies = [
        (f"{path.name}: {item.findtext('title')}", item.findtext(f"{{{CONTENT_NS}}}encoded") or "")
        for item in _items(path)
    ]
    return [(where, content) for where, content in bodies if content.strip()]


@pytest.mark.shared
def test_every_theme_unit_test_body_arrives_whole_or_warned() -> None:
    bodies = _bodies(THEME_UNIT_TEST)
    assert len(bodies) > 90
    kinds: Counter[str] = Counter()
    for where, content in bodies:
        kinds.update(assert_whole_or_warned(where, content))
    assert kinds["video_embedded"] >= 1
    assert kinds["embed_linked"] >= 3
    assert kinds["table_flattened"] >= 3
    assert kinds["code_block"] >= 3


@pytest.mark.shared
@pytest.mark.parametrize(
    "export",
    [
        "wxr-theme-unit-test/64-block-test-data.xml",
        "wxr-theme-unit-test/theme-preview.xml",
        "wxr-wordpress-importer-tests/phpunit-data/a11y-unit-test-data.xml",
        "wxr-wordpress-importer-tests/phpunit-data/theme-unit-test-data.xml",
        "wxr-wordpress-importer-tests/phpunit-data/wxr-utf-8-challenges.xml",
        "wxr-ghost-migrate-fixtures/has-audio-enclosure-with-libsyn-embed.xml",
    ],
)
def test_other_exports_arrive_whole_or_warned(export: str) -> None:
    bodies = _bodies(SHARED / export)
    assert bodies
    for where, content in bodies:
        assert_whole_or_warned(where, content)


@pytest.mark.shared
def test_rest_api_fixture_bodies_arrive_whole_or_warned() -> None:
    folders = [SHARED / "wp-rest-api-core-fixtures", SHARED / "wp-rest-api-ghost-migrate-fixtures"]
    found = 0
    for path in sorted(p for folder in folders for p in require_shared(folder).glob("*.json")):
        for where, content in _rendered_contents(json.loads(path.read_text()), path.name):
            found += 1
            assert_whole_or_warned(where, content)
    assert found >= 10


def _rendered_contents(value: Any, where: str) -> list[tuple[str, str]]:
    """Every ``content.rendered`` of a REST answer (a post, a page, a list of them)."""
    if isinstance(value, list):
        return [found for element in value for found in _rendered_contents(element, where)]
    if not isinstance(value, dict):
        return []
    content = value.get("content")
    found = []
    if isinstance(content, dict) and isinstance(content.get("rendered"), str):
        found.append((f"{where}#{value.get('id')}", content["rendered"]))
    return found + [
        item for key, inner in value.items() if key != "content"
        for item in _rendered_contents(inner, where)
    ]  # fmt: skip
