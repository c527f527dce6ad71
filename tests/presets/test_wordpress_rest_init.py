"""`flowport init wordpress URL` against a real local server serving WordPress's REST fixtures."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel

from flowport.base.errors import SourceError
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.presets.wordpress import scan_rest
from tests.conftest import require_shared
from tests.connectors.wordpress_fixture import FixtureWordPress, load_json

from .conftest import CORE_FIXTURES, invoke_presets

pytestmark = pytest.mark.shared


@dataclass
class _Site(FixtureWordPress):
    """The fixture server, plus the REST index and post types WordPress core's tests recorded."""

    index: dict[str, Any] | None = None
    types: dict[str, Any] | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path in ("/wp-json", "/wp-json/") and self.index is not None:
            return web.json_response(self.index)
        if request.path == "/wp-json/wp/v2/types" and self.types is not None:
            self.requests.append(("/wp/v2/types", dict(request.query)))
            return web.json_response(self.types)
        return await super()._handle(request)


@pytest.fixture
def site() -> Iterator[_Site]:
    folder = require_shared(CORE_FIXTURES)
    server = _Site(
        collections={
            "posts": load_json(folder / "PostsCollection.json"),
            "pages": load_json(folder / "PagesCollection.json"),
            "media": load_json(folder / "MediaCollection.json"),
            "categories": load_json(folder / "CategoriesCollection.json"),
            "tags": load_json(folder / "TagsCollection.json"),
            "users": load_json(folder / "UsersCollection.json"),
        },
        index=load_json(folder / "Schema.json"),
        types=load_json(folder / "TypesCollection.json"),
    ).start()
    yield server
    server.stop()


def test_init_on_a_rest_url_writes_a_job_reading_the_site(site: _Site, tmp_path: Path) -> None:
    job_path = tmp_path / "site.toml"
    result = invoke_presets(
        "init", "wordpress", site.base_url, "--out", str(job_path),
        "--target-api", "https://api.webflow.com/v2", "--site-id", "5f0c8c9e1c9d440000e8d8c3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = load_job(job_path)
    assert list(job.collections) == ["authors", "categories", "tags", "posts", "pages"]
    assert job.destination.token_env == "WEBFLOW_TOKEN"
    resources = {}
    for name, collection in job.collections.items():
        # The registry's protocol leaves model_dump out; every source config is a pydantic model.
        assert isinstance(collection.source, BaseModel)
        source = collection.source.model_dump()
        assert source["type"] == "wordpress"
        assert source["base_url"] == site.base_url
        assert source["user_env"] is None  # anonymous: no status=any, no credentials
        resources[name] = source["resource"]
    assert resources == {
        "authors": "users", "categories": "categories", "tags": "tags",
        "posts": "posts", "pages": "pages",
    }  # fmt: skip
    text = job_path.read_text(encoding="utf-8")
    assert "# Site: http://example.org (Test Blog)" in text
    assert "Attachments: present" in text  # the media route has items
    routes = [route for route, _ in site.requests]
    assert "/wp/v2/types" in routes
    # The redirects come from the same reads the run makes: every published post and page,
    # every category and tag, keyed by its old path on http://example.org.
    with (tmp_path / "site-redirects.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["source", "target"]
    targets = {row[1].split("/")[1] for row in rows[1:]}
    published = list(load_json(CORE_FIXTURES / "PostsCollection.json"))
    assert all(row[0].startswith("/") for row in rows[1:])
    assert len(rows) - 1 >= len(published)
    assert {"posts", "categories", "tags"} <= targets


def test_credentials_are_env_var_names_and_missing_ones_are_named(
    site: _Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WP_TEST_USER", raising=False)
    monkeypatch.delenv("WP_TEST_PASSWORD", raising=False)
    result = invoke_presets(
        "init", "wordpress", site.base_url, "--out", str(tmp_path / "a.toml"),
        "--user-env", "WP_TEST_USER", "--password-env", "WP_TEST_PASSWORD",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "WP_TEST_USER is not set" in result.output
    assert not (tmp_path / "a.toml").exists()


# ---- the site scan talks through the connector's client ------------------------------------


async def test_the_scan_discovers_once_and_follows_rest_route(site: _Site) -> None:
    site.pretty_permalinks = False  # /wp-json/ is a 404 page, ?rest_route= answers
    site.index = None  # the plain fixture index, served through ?rest_route=/ only
    profile = await scan_rest(site.base_url)
    assert profile.title == "fixture"
    assert [route for route, _ in site.requests].count("/") == 1
    assert "/wp/v2/posts" in [route for route, _ in site.requests]
    assert profile.has_attachments


async def test_the_scan_retries_a_busy_site_as_the_run_does(site: _Site) -> None:
    site.failures["/wp/v2/posts"] = 1  # one 503, then the answer
    profile = await scan_rest(site.base_url)
    assert [route for route, _ in site.requests].count("/wp/v2/posts") == 2
    assert profile.permalink_structure is not None


async def test_a_refusal_names_wordpress_error_code_and_message(site: _Site) -> None:
    del site.collections["posts"]
    with pytest.raises(SourceError, match=r"/wp/v2/posts: HTTP 404 rest_no_route: No route"):
        await scan_rest(site.base_url)


async def test_a_wrong_application_password_stops_the_scan(site: _Site) -> None:
    site.user, site.password = "editor", "right password"
    env = {"WP_USER": "editor", "WP_PASSWORD": "wrong password"}
    with pytest.raises(SourceError, match="did not accept the application password") as raised:
        await scan_rest(site.base_url, user_env="WP_USER", password_env="WP_PASSWORD", env=env)
    assert "wrong password" not in str(raised.value)
    env["WP_PASSWORD"] = "right password"
    profile = await scan_rest(
        site.base_url, user_env="WP_USER", password_env="WP_PASSWORD", env=env
    )
    assert profile.user_env == "WP_USER"


async def test_the_scan_finds_a_multilingual_plugin_by_its_rest_field(site: _Site) -> None:
    assert (await scan_rest(site.base_url)).multilingual is None
    # Polylang Pro adds "lang" to each post; the WPML REST API plugin "wpml_current_locale".
    for field, plugin in (("lang", "polylang"), ("wpml_current_locale", "wpml")):
        posts = load_json(require_shared(CORE_FIXTURES) / "PostsCollection.json")
        site.collections["posts"] = [dict(post, **{field: "fr"}) for post in posts]
        found = (await scan_rest(site.base_url)).multilingual
        assert found is not None
        assert (found.plugin, found.language) == (plugin, "language")
