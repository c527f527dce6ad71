"""The WXR source over every WXR file of the acceptance data, plus hostile XML written here.

Expected figures come from a plain ``lxml`` parse of the whole file in the test (small files),
never from the connector's own output.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import aclosing
from pathlib import Path
from urllib.parse import unquote

import pytest
from lxml import etree

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, Source, SourceItem, SourceRecord
from flowport.connectors.wxr import WxrSource, WxrSourceConfig
from tests.conftest import require_shared

from .conftest import open_descriptors_to
from .wordpress_fixture import THEME_UNIT_TEST, WXR_GHOST, WXR_IMPORTER, WXR_THEME

pytestmark = pytest.mark.shared

WP = "{https://wordpress.org/export/1.2/}"


async def read(source: WxrSource, since: str | None = None) -> list[SourceItem]:
    # type-var: see SOURCE_TYPING in wordpress_fixture.py
    async with aclosing(source.records(since)) as items:  # type: ignore[type-var]
        return [item async for item in items]


def records(items: list[SourceItem]) -> dict[str, SourceRecord]:
    return {item.key: item for item in items if isinstance(item, SourceRecord)}


def wxr(kind: str, path: Path = THEME_UNIT_TEST) -> WxrSource:
    return WxrSourceConfig(path=require_shared(path), kind=kind).open(base_dir=Path("/"), env={})


@pytest.fixture(scope="module")
def theme_tree() -> etree._ElementTree:
    return etree.parse(str(require_shared(THEME_UNIT_TEST)))


def plain_items(tree: etree._ElementTree, post_type: str) -> dict[str, etree._Element]:
    found: dict[str, etree._Element] = {}
    for item in tree.iter("item"):
        if item.findtext(f"{WP}post_type") == post_type:
            found.setdefault(item.findtext(f"{WP}post_id") or "", item)
    return found


# -- the theme unit test: exact counts -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "documented"),
    [("post", 58), ("page", 21), ("attachment", 37), ("category", 68), ("tag", 110)],
)
async def test_theme_unit_test_counts(
    theme_tree: etree._ElementTree, kind: str, documented: int
) -> None:
    used: set[str | None] = set()
    if kind == "category":
        expected = {
            el.findtext(f"{WP}category_nicename") for el in theme_tree.iter(f"{WP}category")
        }
    elif kind == "tag":
        expected = {el.findtext(f"{WP}tag_slug") for el in theme_tree.iter(f"{WP}tag")}
    else:
        expected = set(plain_items(theme_tree, kind))
    assert len(expected) == documented
    if kind in ("category", "tag"):
        # Terms the items use without the export declaring them are records too.
        domain = "category" if kind == "category" else "post_tag"
        used = {
            el.get("nicename")
            for item in theme_tree.iter("item")
            for el in item.findall("category")
            if el.get("domain") == domain and el.get("nicename")
        } - expected
    items = await read(wxr(kind))
    assert [item for item in items if isinstance(item, RecordError)] == []
    assert len(records(items)) == documented + len(used)
    if kind == "tag":
        assert sorted(used, key=str) == ["columns", "content", "sample", "test-tag"]


async def test_menu_items_exported_twice_become_errors_with_keys_of_their_own(
    theme_tree: etree._ElementTree,
) -> None:
    ids = Counter(
        item.findtext(f"{WP}post_id")
        for item in theme_tree.iter("item")
        if item.findtext(f"{WP}post_type") == "nav_menu_item"
    )
    twice = [key for key, count in ids.items() if count == 2]
    assert len(twice) == 18
    items = await read(wxr("nav_menu_item"))
    errors = [item for item in items if isinstance(item, RecordError)]
    assert sorted(error.key for error in errors) == sorted(f"{key}~dup2" for key in twice)
    assert all("first occurrence" in error.reason for error in errors)
    assert len(records(items)) == len(ids)
    keys = [item.key for item in items]
    assert len(keys) == len(set(keys))


async def test_record_shape_of_a_post(theme_tree: etree._ElementTree) -> None:
    post = records(await read(wxr("post")))["1241"].fields  # the sticky post
    plain = plain_items(theme_tree, "post")["1241"]
    assert post["title"] == plain.findtext("title")
    assert post["sticky"] is True
    assert post["type"] == "post"
    assert post["content"] == plain.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")
    assert post["content_format"] == "raw"
    assert post["author"]["login"] == plain.findtext("{http://purl.org/dc/elements/1.1/}creator")
    posted = plain.findtext(f"{WP}post_date_gmt")
    assert posted is not None
    assert post["date_gmt"] == posted.replace(" ", "T") + "Z"
    json.dumps(post, allow_nan=False)


async def test_featured_images_resolve_through_thumbnail_id_to_later_attachments(
    theme_tree: etree._ElementTree,
) -> None:
    attachments = plain_items(theme_tree, "attachment")
    order = {item: index for index, item in enumerate(theme_tree.iter("item"))}
    posts = records(await read(wxr("post")))
    resolved = 0
    attachment_after_post = 0
    for key, plain in plain_items(theme_tree, "post").items():
        thumbnail = next(
            (
                meta.findtext(f"{WP}meta_value")
                for meta in plain.iter(f"{WP}postmeta")
                if meta.findtext(f"{WP}meta_key") == "_thumbnail_id"
            ),
            None,
        )
        featured = posts[key].fields["featured_image"]
        if thumbnail is None:
            assert featured is None
            continue
        attachment = attachments[thumbnail]
        assert featured["id"] == int(thumbnail)
        assert featured["url"] == attachment.findtext(f"{WP}attachment_url")
        resolved += 1
        attachment_after_post += order[attachment] > order[plain]
    assert resolved == 6
    assert attachment_after_post > 0, "the two-pass read must be needed by this file"


async def test_categories_nested_three_deep_name_their_parents_by_slug() -> None:
    categories = records(await read(wxr("category")))
    chain = []
    key: str | None = "category:child-2"
    while key is not None:
        chain.append(key)
        parent = categories[key].fields["parent"]
        key = f"category:{parent}" if parent else None
    assert chain == ["category:child-2", "category:child-1", "category:parent"]
    assert categories["category:grandchild-category"].fields["parent"] == "child-category-03"


async def test_percent_encoded_greek_slugs_are_decoded(theme_tree: etree._ElementTree) -> None:
    encoded = {
        key: item.findtext(f"{WP}post_name") or ""
        for key, item in plain_items(theme_tree, "page").items()
        if "%" in (item.findtext(f"{WP}post_name") or "")
    }
    assert len(encoded) == 2
    pages = records(await read(wxr("page")))
    for key, slug in encoded.items():
        assert pages[key].fields["slug"] == unquote(slug)
        assert pages[key].fields["slug"].startswith("επίπεδο")


async def test_since_filters_on_modified_gmt() -> None:
    source = wxr("post")
    full = records(await read(source))
    later = records(await read(source, since="2020-01-01T00:00:00Z"))
    assert 0 < len(later) < len(full)
    assert all(
        record.cursor and record.cursor > "2020-01-01T00:00:00Z" for record in later.values()
    )
    expected = {key for key, r in full.items() if r.cursor and r.cursor > "2020-01-01T00:00:00Z"}
    assert set(later) == expected


async def test_since_takes_a_post_saved_in_the_cursors_second() -> None:
    # WordPress keeps whole seconds: a post saved in the second the last run's cursor holds
    # was skipped by '>' until it changed again (the REST and SQL sources read '>=' already).
    source = wxr("post")
    full = records(await read(source))
    cursor = max(r.cursor for r in full.values() if r.cursor)
    at_cursor = {key for key, r in full.items() if r.cursor == cursor}
    assert at_cursor
    assert set(records(await read(source, since=cursor))) == at_cursor


async def test_terms_and_authors_refuse_since() -> None:
    with pytest.raises(ConfigError, match="incremental"):
        await read(wxr("category"), since="2020-01-01T00:00:00Z")


async def test_closing_early_releases_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "export.xml"
    copy.write_bytes(require_shared(THEME_UNIT_TEST).read_bytes())
    source = WxrSource(copy, kind="post", batch=5)  # so the first batch leaves the file open
    assert isinstance(source, Source)
    async with aclosing(source.records()) as items:
        first = await anext(items)
        assert isinstance(first, SourceRecord)
        assert open_descriptors_to(copy) != []
    assert open_descriptors_to(copy) == []


# -- every WXR file of the acceptance data -----------------------------------------------------

BROKEN = {
    "malformed-simple.xml": (14, "Premature end of data"),
    "malformed.xml": (90, "tag mismatch"),
    "crazy-cdata.xml": (18, "']]>' not allowed"),
    "namespace-edge-cases.xml": (84, "not a valid URI"),
}
REPAIRED = {"sample.xml": 109, "sample-no-slug.xml": 109, "attachments-only.xml": 11}


def all_wxr_files() -> list[Path]:
    roots = [WXR_THEME, WXR_IMPORTER, WXR_GHOST]
    return sorted(path for root in roots if root.exists() for path in root.rglob("*.xml"))


@pytest.mark.parametrize("path", all_wxr_files(), ids=lambda path: path.name)
async def test_every_wxr_file_reads_or_fails_clearly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = ["post", "page", "attachment", "category", "tag", "author"]
    if path.name in BROKEN:
        line, reason = BROKEN[path.name]
        with pytest.raises(SourceError, match=rf"{path.name}: line {line}: .*{reason}"):
            await read(WxrSource(path, kind="post"))
        return
    seen = 0
    for kind in kinds:
        source = WxrSource(path, kind=kind)
        with caplog.at_level(logging.WARNING, logger="flowport.connectors.wxr"):
            items = await read(source)
        seen += len(items)
        for item in items:
            if isinstance(item, SourceRecord):
                json.dumps(dict(item.fields), allow_nan=False)
        if path.name in REPAIRED:
            assert source.notes, "a repaired file must say so"
            assert f"first on line {REPAIRED[path.name]}" in source.notes[0]
    if path.name in REPAIRED:
        assert "repaired" in caplog.text
    assert seen > 0


async def test_a_bare_ampersand_is_repaired_without_losing_the_query_string() -> None:
    source = WxrSource(require_shared(WXR_GHOST) / "sample.xml", kind="attachment")
    media = list(records(await read(source)).values())
    assert len(media) == 1
    assert media[0].fields["url"] == (
        "https://images.unsplash.com/photo-1601276861758-2d9c5ca69a17"
        "?ixlib=rb-1.2.1&ixid=eyJhcHBfaWQiOjEyMDd9&auto=format&fit=crop&w=1268&q=80"
    )
    assert media[0].fields["mime_type"] is None


async def test_without_repair_a_bare_ampersand_is_an_error_with_its_line() -> None:
    config = WxrSourceConfig(
        path=require_shared(WXR_GHOST) / "sample.xml", repair_bare_ampersands=False
    )
    with pytest.raises(SourceError, match=r"sample.xml: line 109: .*EntityRef"):
        await read(config.open(base_dir=Path("/"), env={}))


async def test_repair_never_touches_cdata(tmp_path: Path) -> None:
    path = tmp_path / "amp.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss xmlns:wp="http://wordpress.org/export/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>\n'
        "<item><title>Fish & Chips &nbsp;&amp; more</title><wp:post_id>7</wp:post_id>\n"
        "<content:encoded><![CDATA[a &amp; b & c]]></content:encoded>"
        "<wp:post_type>post</wp:post_type></item></channel></rss>\n",
        encoding="utf-8",
    )
    source = WxrSource(path)
    post = records(await read(source))["7"].fields
    assert post["title"] == "Fish & Chips \xa0& more"
    assert post["content"] == "a &amp; b & c"
    assert "first on line 3" in source.notes[0]


async def test_both_export_namespaces_and_all_versions_are_read() -> None:
    importer = require_shared(WXR_IMPORTER) / "phpunit-data"
    for name, version in [("valid-wxr-1.0.xml", "1.0"), ("valid-wxr-1.1.xml", "1.1")]:
        text = (importer / name).read_text(encoding="utf-8")
        assert f'xmlns:wp="http://wordpress.org/export/{version}/"' in text
        assert records(await read(WxrSource(importer / name, kind="post")))
    assert 'xmlns:wp="https://wordpress.org/export/1.2/"' in THEME_UNIT_TEST.read_text("utf-8")


async def test_wxr_1_0_authors_come_from_dc_creator() -> None:
    path = require_shared(WXR_IMPORTER) / "phpunit-data" / "valid-wxr-1.0.xml"
    assert "<wp:author>" not in path.read_text(encoding="utf-8")
    authors = records(await read(WxrSource(path, kind="author")))
    assert list(authors) == ["admin"]
    assert authors["admin"].fields["login"] == "admin"


async def test_serialized_meta_stays_text() -> None:
    path = require_shared(WXR_IMPORTER) / "phpunit-data" / "test-serialized-postmeta-with-cdata.xml"
    post = next(iter(records(await read(WxrSource(path))).values())).fields
    serialized = [value for value in post["meta"].values() if str(value).startswith("a:")]
    assert serialized, post["meta"]
    assert all(isinstance(value, str) for value in serialized)


# -- hostile and broken input -----------------------------------------------------------------


async def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">\n' for n in range(1, 10))
    path = tmp_path / "lol.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n{lol}]>\n'
        '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel><wp:wxr_version>1.2'
        "</wp:wxr_version><item><title>&lol9;</title><wp:post_id>1</wp:post_id></item>"
        "</channel></rss>\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match=r"lol.xml: line \d+: the DOCTYPE declares entities"):
        await read(WxrSource(path))


async def test_external_entities_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read-me", encoding="utf-8")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel><item><title>&xxe;</title>'
        "<wp:post_id>1</wp:post_id></item></channel></rss>\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match="xxe") as raised:
        await read(WxrSource(path))
    assert "do-not-read-me" not in str(raised.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.xml: not XML"),
        (b"id,title\n1,hello\n", r"empty\.xml: line 1: not well-formed XML"),
        (b"<rss><channel><item><title>x</title></item></channel></rss>", "not a WordPress export"),
    ],
    ids=["empty", "csv", "plain-rss"],
)
async def test_files_that_are_not_wxr_fail_clearly(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "empty.xml"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        await read(WxrSource(path))


async def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nothere\.xml: cannot open"):
        await read(WxrSource(tmp_path / "nothere.xml"))


def test_config_resolves_relative_paths_and_rejects_unknown_kinds(tmp_path: Path) -> None:
    source = WxrSourceConfig(path=Path("export.xml"), kind="term:nav_menu").open(
        base_dir=tmp_path, env={}
    )
    assert source.name == "wxr:export.xml:term:nav_menu"
    assert source.incremental is False
    with pytest.raises(ValueError, match="kind must be"):
        WxrSourceConfig(path=Path("x.xml"), kind="Post Type!")
    with pytest.raises(ValueError, match="extra"):
        WxrSourceConfig.model_validate({"path": "x.xml", "colour": "red"})


@pytest.mark.shared
async def test_comments_of_every_item_without_e_mail_or_ip_addresses() -> None:
    export = require_shared(THEME_UNIT_TEST)
    root = etree.parse(str(export), etree.XMLParser(resolve_entities=False, huge_tree=True))
    wp = root.getroot().nsmap["wp"]  # https:// in this file, http:// in others
    expected = {
        c.findtext(f"{{{wp}}}comment_id"): c.findtext(f"{{{wp}}}comment_approved")
        for c in root.iter(f"{{{wp}}}comment")
    }
    emails = {
        text
        for c in root.iter(f"{{{wp}}}comment")
        if (text := (c.findtext(f"{{{wp}}}comment_author_email") or "").strip())
    }
    got = records(await read(WxrSource(export, kind="comment")))
    assert len(got) == len(expected) == 33  # the acceptance README's count
    for key, approved in expected.items():
        status = got[str(key)].fields["status"]
        assert status == {"1": "approved", "0": "hold"}[str(approved)], key
    assert emails  # the export holds commenters' addresses: none reaches a record
    for record in got.values():
        assert not any(e in repr(record.fields) for e in emails)
        assert record.fields["on"] == {record.fields["post_type"]: str(record.fields["post"])}


def _long_export(path: Path, items: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:wp="http://wordpress.org/export/1.2/"><channel><title>Long</title>'
            "<wp:wxr_version>1.2</wp:wxr_version>\n"
        )
        for n in range(1, items + 1):
            out.write(
                f"<item><title>Post {n}</title><content:encoded><![CDATA[<p>{n}</p>]]>"
                f"</content:encoded><wp:post_id>{n}</wp:post_id><wp:post_name>post-{n}"
                "</wp:post_name><wp:status>publish</wp:status><wp:post_type>post</wp:post_type>"
                "</item>\n"
            )
        out.write("</channel></rss>\n")


async def test_a_long_export_is_read_in_flat_memory(tmp_path: Path) -> None:
    """What the read keeps per item it has met (to tell a repeated post from a new one) stays
    off the heap: a dict of them made a 1,000,000-item export's plan peak at 364 MB."""
    import tracemalloc

    path = tmp_path / "long.xml"
    _long_export(path, 20_000)
    source = WxrSource(path, kind="post")
    assert isinstance(source, Source)  # its records() is the protocol's async generator
    tracemalloc.start()
    try:
        held: list[int] = []
        count = 0
        async with aclosing(source.records()) as items:
            async for item in items:
                assert isinstance(item, SourceRecord)
                count += 1
                if count in (2_000, 20_000):  # the last one while the read is still open
                    held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # 18,000 more posts met: a dict entry each was ~5 MB more; batches in flight come and go.
    assert held[1] - held[0] < 1_500_000, held
