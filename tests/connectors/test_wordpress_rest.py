"""The WordPress REST source: recorded answers on a real local server, then a real WordPress."""

from __future__ import annotations

import base64
import copy
import logging
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flowport.base.errors import ConfigError, SourceError
from flowport.connectors import RecordError, Source, SourceItem, SourceRecord
from flowport.connectors.wordpress_rest import WordPressRestConfig, WordPressRestSource
from flowport.connectors.wxr import WxrSource
from tests.conftest import require_shared

from .wordpress_fixture import (
    CORE_FIXTURES,
    GHOST_REST,
    THEME_UNIT_TEST,
    FixtureWordPress,
    WordPressSite,
    fixture_wordpress,
    load_json,
    wordpress_site,
)

__all__ = ["fixture_wordpress", "wordpress_site"]  # fixtures used here, imported to register

PASSWORD = "abcd EFGH ijkl MNOP qrst UVWX"  # the shape of an application password
FAST = {"backoff_seconds": 0.0, "max_attempts": 3}

Server = Callable[..., FixtureWordPress]


async def read(source: WordPressRestSource, since: str | None = None) -> list[SourceItem]:
    # type-var: see SOURCE_TYPING in wordpress_fixture.py
    async with aclosing(source.records(since)) as items:  # type: ignore[type-var]
        return [item async for item in items]


def records(items: list[SourceItem]) -> dict[str, SourceRecord]:
    return {item.key: item for item in items if isinstance(item, SourceRecord)}


def rest(server: FixtureWordPress, env: dict[str, str] | None = None, **options: Any) -> Any:
    config = WordPressRestConfig(base_url=server.base_url, **{**FAST, **options})
    return config.open(base_dir=Path(), env=env or {})


def ghost(name: str) -> dict[str, Any]:
    return dict(load_json(require_shared(GHOST_REST) / name))


# -- recorded answers -----------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize(
    "name",
    [
        "single-post.json",
        "single-post-with-html-in-title.json",
        "single-post-with-duplicate-images.json",
        "single-post-no-author.json",
        "single-page.json",
        "single-coauthor-post.json",
        "co-authors-post.json",
    ],
)
async def test_ghost_fixtures_map_into_the_common_shape(
    fixture_wordpress: Server, name: str
) -> None:
    item = ghost(name)
    resource = "pages" if item["type"] == "page" else "posts"
    server = fixture_wordpress({resource: [item]})
    [record] = await read(rest(server, resource=resource))
    assert isinstance(record, SourceRecord)
    fields = record.fields
    assert record.key == str(item["id"])
    assert record.cursor == item["modified_gmt"] + "Z"
    assert fields["content"] == item["content"]["rendered"]
    assert fields["content_format"] == "rendered"
    assert "&#" not in fields["title"]
    embedded = item.get("_embedded", {})
    if "author" in item and embedded.get("author"):
        assert fields["author"]["slug"] == embedded["author"][0]["slug"]
        assert fields["author"]["login"] is None
    elif "author" not in item:
        assert fields["author"] is None
    if item.get("featured_media"):
        media = embedded["wp:featuredmedia"][0]
        assert fields["featured_image"] == {
            "id": item["featured_media"],
            "url": media["source_url"],
            "alt": media["alt_text"],
        }
    terms = [term for group in embedded.get("wp:term", []) for term in group]
    tags = [term["slug"] for term in terms if term["taxonomy"] == "post_tag"]
    assert [tag["slug"] for tag in fields["tags"]] == tags
    coauthors = [term["slug"] for term in terms if term["taxonomy"] == "author"]
    assert [ref["slug"] for ref in fields["terms"].get("author", [])] == coauthors


@pytest.mark.shared
async def test_html_in_rendered_titles_keeps_tags_and_decodes_entities(
    fixture_wordpress: Server,
) -> None:
    item = ghost("single-post-with-html-in-title.json")
    item["title"]["rendered"] = "Fish &amp; Chips &#8211; <b>bold</b>"
    server = fixture_wordpress({"posts": [item]})
    [record] = await read(rest(server))
    assert isinstance(record, SourceRecord)
    assert record.fields["title"] == "Fish & Chips – <b>bold</b>"


@pytest.mark.shared
async def test_a_custom_post_type_is_found_through_types(fixture_wordpress: Server) -> None:
    item = ghost("single-cpt-post.json")
    server = fixture_wordpress({"mycpt": [item]})
    source = rest(server, resource="mycpt")
    assert source.incremental
    [record] = await read(source)
    assert isinstance(record, SourceRecord)
    assert record.fields["type"] == "mycpt"
    assert ("/wp/v2/types", {}) in server.requests


@pytest.mark.shared
@pytest.mark.parametrize(
    ("resource", "fixture", "sample_key", "sample"),
    [
        ("posts", "PostsCollection.json", "4", {"meta": {"meta_key": "meta_value"}}),
        ("pages", "PagesCollection.json", "7", {"type": "page"}),
        ("media", "MediaCollection.json", "10", {"mime_type": "image/jpeg"}),
        ("categories", "CategoriesCollection.json", "category:uncategorized", {"parent": None}),
        ("tags", "TagsCollection.json", "post_tag:restapi-client-fixture-tag", {"name": None}),
        ("users", "UsersCollection.json", "restapiclientfixtureuser", {"login": None}),
    ],
)
async def test_core_fixtures_of_every_resource(
    fixture_wordpress: Server,
    resource: str,
    fixture: str,
    sample_key: str,
    sample: dict[str, Any],
) -> None:
    items = load_json(require_shared(CORE_FIXTURES) / fixture)
    server = fixture_wordpress({resource: items})
    read_items = await read(rest(server, resource=resource))
    got = records(read_items)
    assert len(got) == len(items)
    assert sample_key in got, sorted(got)
    for name, value in sample.items():
        if name == "name":
            value = items[0]["name"]
        assert got[sample_key].fields[name] == value


@pytest.mark.shared
async def test_pagination_follows_x_wp_totalpages_in_windows(fixture_wordpress: Server) -> None:
    template = ghost("single-post.json")
    posts = []
    for number in range(250, 0, -1):
        post = copy.deepcopy(template)
        post["id"] = number
        posts.append(post)
    server = fixture_wordpress({"posts": posts})
    source = rest(server, max_pages_in_flight=2)
    got = [item for item in await read(source) if isinstance(item, SourceRecord)]
    assert [record.key for record in got] == [str(number) for number in range(1, 251)]
    assert source.reported_total == 250
    pages = sorted(
        int(query["page"]) for route, query in server.requests if route == "/wp/v2/posts"
    )
    assert pages == [1, 2, 3]
    assert all(
        query["per_page"] == "100" and query["orderby"] == "id"
        for route, query in server.requests
        if route == "/wp/v2/posts"
    )


@pytest.mark.shared
async def test_5xx_is_retried_then_reported(fixture_wordpress: Server) -> None:
    posts = [dict(ghost("single-post.json"), id=number) for number in range(1, 151)]
    server = fixture_wordpress({"posts": posts}, failures={"/wp/v2/posts?page=2": 2})
    assert len(records(await read(rest(server)))) == 150
    assert [q["page"] for r, q in server.requests if r == "/wp/v2/posts"].count("2") == 3

    server.failures["/wp/v2/posts?page=2"] = 5
    with pytest.raises(SourceError, match="HTTP 503"):
        await read(rest(server, max_attempts=2))


@pytest.mark.shared
async def test_a_retry_after_longer_than_a_source_wait_stops_the_read_at_once(
    fixture_wordpress: Server,
) -> None:
    posts = [dict(ghost("single-post.json"), id=number) for number in range(1, 151)]
    server = fixture_wordpress(
        {"posts": posts}, failures={"/wp/v2/posts?page=2": 1}, retry_after="86400"
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"HTTP 503 asks to wait 86400 s \(Retry-After\)"):
        await read(rest(server))
    assert time.monotonic() - started < 10
    assert [q["page"] for r, q in server.requests if r == "/wp/v2/posts"].count("2") == 1


@pytest.mark.shared
async def test_a_long_wait_for_a_source_is_logged_with_how_long_and_why(
    fixture_wordpress: Server, caplog: pytest.LogCaptureFixture
) -> None:
    posts = [dict(ghost("single-post.json"), id=number) for number in range(1, 151)]
    server = fixture_wordpress(
        {"posts": posts}, failures={"/wp/v2/posts?page=2": 1}, retry_after="5"
    )
    with caplog.at_level(logging.WARNING, logger="flowport.connectors.wordpress_api"):
        assert len(records(await read(rest(server)))) == 150
    (said,) = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert "/wp/v2/posts: waiting 5 s before try 2, as its Retry-After asks" in said


@pytest.mark.shared
async def test_rest_route_is_used_when_pretty_permalinks_are_off(fixture_wordpress: Server) -> None:
    server = fixture_wordpress({"posts": [ghost("single-post.json")]}, pretty_permalinks=False)
    assert list(records(await read(rest(server)))) == ["12345"]
    forced = rest(server, api_style="query")
    assert list(records(await read(forced))) == ["12345"]
    with pytest.raises(SourceError, match="no WordPress REST API"):
        await read(rest(server, api_style="pretty"))


@pytest.mark.shared
async def test_credentials_switch_to_edit_context_and_a_wrong_password_stops(
    fixture_wordpress: Server,
) -> None:
    server = fixture_wordpress(
        {"posts": [ghost("single-post.json")]}, user="editor", password=PASSWORD
    )
    names = {"user_env": "WP_USER", "password_env": "WP_APP_PASSWORD"}
    good = rest(server, {"WP_USER": "editor", "WP_APP_PASSWORD": PASSWORD}, status="any", **names)
    assert PASSWORD not in repr(good)
    assert PASSWORD not in good.name
    assert len(records(await read(good))) == 1
    post_queries = [query for route, query in server.requests if route == "/wp/v2/posts"]
    assert post_queries[-1]["context"] == "edit"
    assert post_queries[-1]["status"] == "any"

    wrong = rest(server, {"WP_USER": "editor", "WP_APP_PASSWORD": "wrong"}, **names)
    with pytest.raises(SourceError, match="did not accept the application password") as raised:
        await read(wrong)
    assert "wrong" not in str(raised.value).replace("wrong application password", "")
    assert "rest_not_logged_in" in str(raised.value)

    with pytest.raises(ConfigError, match="WP_APP_PASSWORD is not set"):
        WordPressRestConfig(base_url=server.base_url, **names).open(
            base_dir=Path(), env={"WP_USER": "editor"}
        )


@pytest.mark.shared
async def test_items_without_an_id_are_record_errors(fixture_wordpress: Server) -> None:
    dated = load_json(require_shared(GHOST_REST) / "dated-posts.json")
    server = fixture_wordpress({"posts": [*dated, ghost("single-post.json")]})
    items = await read(rest(server))
    errors = [item for item in items if isinstance(item, RecordError)]
    assert len(errors) == 3
    assert all("without an id" in error.reason for error in errors)
    assert list(records(items)) == ["12345"]


@pytest.mark.shared
async def test_incremental_read_sends_modified_after_and_filters_on_modified_gmt(
    fixture_wordpress: Server,
) -> None:
    posts = []
    for number, day in enumerate(["2021-01-01", "2022-06-01", "2023-03-01"], start=1):
        post = dict(ghost("single-post.json"), id=number)
        post["modified"] = post["modified_gmt"] = f"{day}T10:00:00"
        posts.append(post)
    server = fixture_wordpress({"posts": posts})
    source = rest(server)
    # Inclusive: post 2, saved in the cursor's very second, is read again (WordPress keeps
    # whole seconds, so an edit made in that second compares equal to the cursor).
    later = records(await read(source, since="2022-06-01T10:00:00Z"))
    assert list(later) == ["2", "3"]
    query = [q for r, q in server.requests if r == "/wp/v2/posts"][-1]
    assert query["modified_after"] == "2022-05-31T19:00:00"  # 15 hours of zone margin
    assert list(records(await read(source, since="2023-03-01T10:00:00Z"))) == ["3"]
    assert records(await read(source, since="2023-03-01T10:00:01Z")) == {}
    with pytest.raises(ConfigError, match="incremental"):
        await read(rest(server, resource="tags"), since="2020-01-01T00:00:00Z")


@pytest.mark.shared
async def test_terms_beyond_the_ten_embedded_are_looked_up(fixture_wordpress: Server) -> None:
    post = ghost("single-post.json")
    tags = [
        {"id": number, "slug": f"tag-{number}", "name": f"Tag {number}", "taxonomy": "post_tag"}
        for number in range(1, 13)
    ]
    post["tags"] = [tag["id"] for tag in tags]
    post["_embedded"]["wp:term"] = [[], tags[:10]]
    post["categories"] = []
    server = fixture_wordpress({"posts": [post], "tags": tags})
    [record] = await read(rest(server))
    assert isinstance(record, SourceRecord)
    assert [tag["slug"] for tag in record.fields["tags"]] == [f"tag-{n}" for n in range(1, 13)]


@pytest.mark.shared
async def test_an_unreachable_site_is_a_source_error() -> None:
    source = WordPressRestConfig(base_url="http://127.0.0.1:9", **FAST).open(
        base_dir=Path(), env={}
    )
    assert isinstance(source, Source)
    with pytest.raises(SourceError, match="no answer after 3 tries"):
        await read(source)


def test_config_refuses_credentials_in_the_url_and_half_credentials() -> None:
    with pytest.raises(ValueError, match="must not hold credentials"):
        WordPressRestConfig(base_url=f"http://admin:{PASSWORD}@example.com")
    with pytest.raises(ValueError, match="go together"):
        WordPressRestConfig(base_url="http://example.com", user_env="WP_USER")
    config = WordPressRestConfig(base_url="http://example.com/blog/", resource="tags")
    source = config.open(base_dir=Path(), env={})
    assert source.name == "wordpress:example.com/blog/tags"
    assert source.incremental is False


# -- the real WordPress -----------------------------------------------------------------------


async def reported_total(site: WordPressSite, resource: str, *, auth: bool, **params: str) -> int:
    token = base64.b64encode(f"{site.user}:{site.app_password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{site.base_url}/wp-json/wp/v2/{resource}",
            params={"per_page": "1", **params},
            headers=headers,
        ) as response,
    ):
        assert response.status == 200, await response.text()
        await response.read()
        return int(response.headers["X-WP-Total"])


def real(site: WordPressSite, resource: str, *, auth: bool, **options: Any) -> Any:
    names = {"user_env": "WP_USER", "password_env": "WP_APP_PASSWORD"} if auth else {}
    config = WordPressRestConfig(base_url=site.base_url, resource=resource, **names, **options)
    return config.open(base_dir=Path(), env=site.env())


RESOURCES = ["posts", "pages", "categories", "tags", "users", "media"]


@pytest.mark.wordpress
@pytest.mark.parametrize("auth", [False, True], ids=["anonymous", "app-password"])
async def test_every_item_of_every_resource_comes_through(
    wordpress_site: WordPressSite, auth: bool
) -> None:
    counts = {}
    for resource in RESOURCES:
        status = {"status": "any"} if auth and resource in ("posts", "pages") else {}
        expected = await reported_total(wordpress_site, resource, auth=auth, **status)
        source = real(wordpress_site, resource, auth=auth, **status)
        items = await read(source)
        assert [item for item in items if isinstance(item, RecordError)] == []
        assert len(records(items)) == expected == source.reported_total, resource
        counts[resource] = expected
    # The seeded theme unit test (wp-local.sh README): drafts and future posts need the password.
    assert counts["posts"] == (58 if auth else 56)
    assert counts["categories"] == 68


@pytest.mark.wordpress
@pytest.mark.shared
async def test_keys_agree_with_the_wxr_the_site_was_seeded_from(
    wordpress_site: WordPressSite,
) -> None:
    pairs = [
        ("post", "posts"),
        ("page", "pages"),
        ("attachment", "media"),
        ("category", "categories"),
    ]
    for kind, resource in pairs:
        from_file = records(
            [item async for item in WxrSource(require_shared(THEME_UNIT_TEST), kind=kind).records()]
        )
        options = {"status": "any"} if resource in ("posts", "pages") else {}
        from_site = records(await read(real(wordpress_site, resource, auth=True, **options)))
        assert set(from_file) == set(from_site), kind
        for key in from_file:
            assert from_file[key].fields["slug"] == from_site[key].fields["slug"]
            if kind == "category":
                assert from_file[key].fields["parent"] == from_site[key].fields["parent"]
    posts = records(await read(real(wordpress_site, "posts", auth=True, status="any")))
    assert posts["1241"].fields["sticky"] is True
    assert posts["1011"].fields["featured_image"]["url"].endswith("featured-image-horizontal.jpg")
    authors = records([i async for i in WxrSource(THEME_UNIT_TEST, kind="author").records()])
    users = records(await read(real(wordpress_site, "users", auth=True)))
    assert set(authors) <= set(users)


@pytest.mark.wordpress
async def test_incremental_reads_with_modified_after(wordpress_site: WordPressSite) -> None:
    source = real(wordpress_site, "posts", auth=True, status="any")
    full = records(await read(source))
    cursors = sorted({record.cursor for record in full.values() if record.cursor})
    since = cursors[len(cursors) // 2]
    later = records(await read(source, since=since))
    assert set(later) == {key for key, r in full.items() if r.cursor and r.cursor >= since}
    assert 0 < len(later) < len(full)


@pytest.mark.wordpress
async def test_the_rest_route_form_reads_the_same(wordpress_site: WordPressSite) -> None:
    pretty = records(await read(real(wordpress_site, "categories", auth=False)))
    query = records(await read(real(wordpress_site, "categories", auth=False, api_style="query")))
    assert {k: r.fields for k, r in pretty.items()} == {k: r.fields for k, r in query.items()}


@pytest.mark.wordpress
async def test_a_wrong_application_password_is_a_clear_error(
    wordpress_site: WordPressSite,
) -> None:
    config = WordPressRestConfig(
        base_url=wordpress_site.base_url,
        user_env="WP_USER",
        password_env="WP_APP_PASSWORD",
        status="any",
    )
    wrong = "Wrng Pass Word Xxxx Yyyy Zzzz"
    source = config.open(
        base_dir=Path(), env={"WP_USER": wordpress_site.user, "WP_APP_PASSWORD": wrong}
    )
    with pytest.raises(SourceError, match="did not accept the application password") as raised:
        await read(source)
    assert wrong not in str(raised.value)
    assert wordpress_site.app_password not in str(raised.value)


@pytest.mark.shared
async def test_a_multilingual_plugins_language_becomes_the_records_language(
    fixture_wordpress: Server,
) -> None:
    # Polylang Pro answers "lang" on each post, the WPML REST API plugin
    # "wpml_current_locale"; a site with neither gives records without the key.
    polylang = dict(ghost("single-post.json"), id=1, lang="fr")
    wpml = dict(ghost("single-post.json"), id=2, wpml_current_locale="de_DE")
    plain = dict(ghost("single-post.json"), id=3)
    server = fixture_wordpress({"posts": [polylang, wpml, plain]})
    got = records(await read(rest(server)))
    assert got["1"].fields["language"] == "fr"
    assert got["2"].fields["language"] == "de_DE"
    assert "language" not in got["3"].fields


@pytest.mark.shared
async def test_comments_are_read_without_their_writers_private_data(
    fixture_wordpress: Server,
) -> None:
    items = load_json(require_shared(CORE_FIXTURES) / "CommentsCollection.json")
    # In the edit context WordPress adds the writer's e-mail and IP: never read.
    private = [
        dict(item, author_email="someone@example.org", author_ip="192.0.2.7") for item in items
    ]
    server = fixture_wordpress({"comments": private})
    got = records(await read(rest(server, resource="comments")))
    assert len(got) == len(items)
    first = got[str(items[0]["id"])].fields
    assert first["post"] == items[0]["post"]
    assert first["on"] == {"post": str(items[0]["post"])}
    assert first["author_name"] == items[0]["author_name"]
    assert first["content"] == items[0]["content"]["rendered"]
    assert first["status"] == "approved"
    for record in got.values():
        text = repr(record.fields)
        assert "someone@example.org" not in text
        assert "192.0.2.7" not in text
        assert "gravatar" not in text


@pytest.mark.parametrize("listed", [[67, 26, 3], [26, 67, 3]])
def test_terms_of_the_same_name_come_in_one_order(listed: list[int]) -> None:
    # MySQL lists two "Foo A" categories (the theme unit test has them) in either order, and
    # the post's content hash followed: an unchanged post looked changed to a nightly run.
    from flowport.connectors.wordpress_rest import _terms

    names = {26: "Foo A", 67: "Foo A", 3: "aciform"}
    item = {
        "categories": listed,
        "_embedded": {
            "wp:term": [
                [
                    {"id": term, "taxonomy": "category", "slug": f"t{term}", "name": names[term]}
                    for term in listed
                ]
            ]
        },
    }
    assert [ref["id"] for ref in _terms(item, {})["category"]] == [26, 67, 3]
