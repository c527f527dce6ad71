"""WordPress for the tests: a real WordPress (wp-local.sh) and a small real REST fixture server.

``ensure_wordpress`` starts one real WordPress per test session (its own database and a free
port, seeded with the theme unit test export) and stops it when the session ends; the
``wordpress_site`` fixture and the conformance cases share it. Outside CI, no root or no script
skips with the reason; with ``CI=true`` it fails instead.

``FixtureWordPress`` serves recorded REST answers (the acceptance fixtures) from a real aiohttp
server on 127.0.0.1, in a thread of its own so sync case factories can use it too. It computes
``X-WP-Total``/``X-WP-TotalPages`` like WordPress, honours ``per_page``/``page``/``orderby=id``/
``modified_after``/``_fields``/``include``, checks Basic auth on ``users/me``, can hide
``/wp-json/`` (plain permalinks) and can fail chosen requests with 503 to exercise retries.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import re
import secrets
import shlex
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from aiohttp import web

from tests.conftest import ACCEPTANCE, SHARED, free_port, require_shared, unavailable

__all__ = [
    "CORE_FIXTURES",
    "GHOST_REST",
    "THEME_UNIT_TEST",
    "WXR_GHOST",
    "WXR_IMPORTER",
    "WXR_THEME",
    "CountingProxy",
    "FixtureWordPress",
    "WordPressSite",
    "ensure_wordpress",
    "fixture_wordpress",
    "load_json",
    "wordpress_site",
]

WXR_THEME = ACCEPTANCE / "wxr-theme-unit-test"
WXR_IMPORTER = ACCEPTANCE / "wxr-wordpress-importer-tests"
WXR_GHOST = ACCEPTANCE / "wxr-ghost-migrate-fixtures"
CORE_FIXTURES = ACCEPTANCE / "wp-rest-api-core-fixtures"
GHOST_REST = ACCEPTANCE / "wp-rest-api-ghost-migrate-fixtures"
THEME_UNIT_TEST = WXR_THEME / "themeunittestdata.wordpress.xml"
WP_LOCAL = SHARED / "wordpress" / "wp-local.sh"
#: Where wp-local.sh keeps its instances, and the lock that serializes their starts on a host.
WP_LOCAL_HOME = Path(os.environ.get("WP_LOCAL_HOME", "/var/tmp/wp-local"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_abandoned_instances() -> list[str]:
    """Reset the instances of test sessions that died without cleaning up (killed by a timeout
    or SIGKILL): their name carries their session's pid. Called under the start lock."""
    reaped: list[str] = []
    instances = WP_LOCAL_HOME / "instances"
    for folder in sorted(instances.iterdir()) if instances.is_dir() else ():
        match = re.fullmatch(r"flowport_wp_(\d+)_[0-9a-f]+", folder.name)
        if match is None or _alive(int(match.group(1))):
            continue
        subprocess.run(
            ["bash", str(WP_LOCAL), "reset", "--db", folder.name],
            capture_output=True,
            check=False,
            timeout=120,
        )
        reaped.append(folder.name)
    return reaped


def session_database() -> str:
    """A database (and so instance) name of this test session's own: two sessions on one host
    must not stop, reseed or reset each other's WordPress."""
    return f"flowport_wp_{os.getpid()}_{secrets.token_hex(3)}"


# SOURCE_TYPING: why the WXR and REST cases carry ``type: ignore``: ``WxrSource.records`` and
# ``WordPressRestSource.records`` are annotated ``AsyncIterator``, while the ``Source`` protocol
# promises an ``AsyncGenerator`` (whose ``aclose`` closing relies on). The objects are async
# generators at run time; once connectors/ aligns the annotations, mypy flags these ignores.


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------
# The real WordPress


@dataclass(frozen=True)
class WordPressSite:
    base_url: str
    user: str
    app_password: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {"WP_USER": self.user, "WP_APP_PASSWORD": self.app_password}


_SITE_KEY = pytest.StashKey[WordPressSite]()


def _parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                values[name] = value
    return values


def ensure_wordpress(config: pytest.Config) -> WordPressSite:
    """The session's real WordPress, started on first use and stopped when the session ends."""
    site = config.stash.get(_SITE_KEY, None)
    if site is not None:
        return site
    if not WP_LOCAL.exists():
        unavailable(f"wp-local.sh not found at {WP_LOCAL.resolve()}")
    if os.geteuid() != 0:
        unavailable("wp-local.sh needs root (it installs PHP with apt and runs php -S)")
    database = session_database()

    def reset() -> None:
        # Stops the server and drops the instance's database and folder: nothing outlives us.
        subprocess.run(
            ["bash", str(WP_LOCAL), "reset", "--db", database],
            capture_output=True,
            check=False,
            timeout=120,
        )

    config.add_cleanup(reset)
    # Starts share wp-local.sh's package cache and the choice of a free port: one at a time.
    WP_LOCAL_HOME.mkdir(parents=True, exist_ok=True)
    with (WP_LOCAL_HOME / "flowport-tests.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reap_abandoned_instances()
        port = free_port()
        command = ["bash", str(WP_LOCAL), "start", "--db", database, "--port", str(port)]
        command += ["--wxr", str(THEME_UNIT_TEST)]
        started = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if started.returncode != 0:
        unavailable(f"wp-local.sh start failed: {(started.stdout + started.stderr)[-800:]}")
    printed = subprocess.run(
        ["bash", str(WP_LOCAL), "env", "--db", database],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    values = _parse_env(printed.stdout)
    site = WordPressSite(values["WP_BASE_URL"], values["WP_USER"], values["WP_APP_PASSWORD"])
    config.stash[_SITE_KEY] = site
    return site


@pytest.fixture(scope="session")
def wordpress_site(pytestconfig: pytest.Config) -> WordPressSite:
    return ensure_wordpress(pytestconfig)


# ----------------------------------------------------------------------------------------------
# The REST fixture server


def _item_modified(item: Mapping[str, Any]) -> str:
    return str(item.get("modified") or item.get("modified_gmt") or "")


class LoopbackServer:
    """An aiohttp app served on 127.0.0.1 (a free port) by an event loop in a thread of its own,
    so that synchronous tests, and CLI child processes, reach it while the test goes on."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def start(self, make_app: Callable[[], Awaitable[web.Application]]) -> str:
        """Serves the app ``make_app`` builds (on the server's loop); its base URL."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        base_url = ""

        async def serve() -> None:
            nonlocal base_url
            self._runner = web.AppRunner(await make_app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            base_url = f"http://127.0.0.1:{port}"

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(10)
        return base_url

    def stop(self, then: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stops serving, then awaits ``then`` (on the server's loop), then ends the loop."""
        if self._loop is None or self._thread is None:
            return

        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if then is not None:
                await then()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None


@dataclass
class FixtureWordPress:
    """Recorded REST answers, served for real; see the module docstring."""

    collections: dict[str, list[dict[str, Any]]]
    pretty_permalinks: bool = True
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    #: route → how many of its next requests answer 503 before the real answer
    failures: dict[str, int] = field(default_factory=dict)
    #: the Retry-After header of those 503s (none when None)
    retry_after: str | None = None
    #: (route, query) of every request, in order
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""
    _server: LoopbackServer = field(
        default_factory=lambda: LoopbackServer("fixture-wordpress"), repr=False
    )

    def _authorized(self, request: web.Request) -> bool:
        if self.user is None or self.password is None:
            return False
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {token}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if request.path.startswith("/wp-json") and self.pretty_permalinks:
            route = request.path.removeprefix("/wp-json") or "/"
        elif request.path == "/" and "rest_route" in query:
            route = query.pop("rest_route")
        else:
            return web.Response(status=404, text="<html>Not Found</html>", content_type="text/html")
        self.requests.append((route, query))
        key = f"{route}?page={query.get('page', '1')}"
        for failing in (key, route):
            if self.failures.get(failing, 0) > 0:
                self.failures[failing] -= 1
                headers = {"Retry-After": self.retry_after} if self.retry_after else None
                return web.json_response(
                    {"code": "busy", "message": "try later"}, status=503, headers=headers
                )
        if route == "/":
            return web.json_response({"name": "fixture", "namespaces": ["wp/v2"]})
        if route == "/wp/v2/users/me":
            if not self._authorized(request):
                return web.json_response(
                    {"code": "rest_not_logged_in", "message": "You are not currently logged in."},
                    status=401,
                )
            return web.json_response({"id": 1, "username": self.user})
        if route == "/wp/v2/types":
            return web.json_response(
                {
                    slug: {"slug": slug, "rest_base": slug}
                    for slug in self.collections
                    if slug not in ("categories", "tags", "users")
                }
            )
        if route == "/wp/v2/taxonomies":
            return web.json_response({})
        resource = route.removeprefix("/wp/v2/")
        if resource not in self.collections:
            return web.json_response(
                {"code": "rest_no_route", "message": "No route was found."}, status=404
            )
        if ("status" in query or query.get("context") == "edit") and not self._authorized(request):
            return web.json_response(
                {"code": "rest_forbidden_context", "message": "Sorry, you are not allowed."},
                status=401,
            )
        return self._collection(self.collections[resource], query)

    def _collection(self, items: list[dict[str, Any]], query: dict[str, str]) -> web.Response:
        chosen = list(items)
        if "modified_after" in query:
            chosen = [item for item in chosen if _item_modified(item) > query["modified_after"]]
        if "include" in query:
            wanted = {int(value) for value in query["include"].split(",")}
            chosen = [item for item in chosen if item.get("id") in wanted]
        if query.get("orderby") == "id":
            chosen.sort(key=lambda item: int(item.get("id") or 0))
        per_page = int(query.get("per_page", "10"))
        page = int(query.get("page", "1"))
        total_pages = max(1, -(-len(chosen) // per_page))
        if page > total_pages:
            return web.json_response(
                {"code": "rest_post_invalid_page_number", "message": "Too far."}, status=400
            )
        window = chosen[(page - 1) * per_page : page * per_page]
        if "_fields" in query:
            names = query["_fields"].split(",")
            window = [{name: item[name] for name in names if name in item} for item in window]
        headers = {"X-WP-Total": str(len(chosen)), "X-WP-TotalPages": str(total_pages)}
        return web.json_response(window, headers=headers)

    async def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        return app

    def start(self) -> Self:
        self.base_url = self._server.start(self._app)
        return self

    def stop(self) -> None:
        self._server.stop()


class CountingProxy:
    """A real HTTP proxy on 127.0.0.1 in front of a site (the real WordPress), in a thread of
    its own: it forwards every request and records its REST route and query, so a test counts
    what a run asks the site, whoever asks (a CLI child process too)."""

    #: Answer headers a WordPress client reads; hop-by-hop and length headers are aiohttp's.
    _PASSED = ("Content-Type", "X-WP-Total", "X-WP-TotalPages", "Retry-After", "Link")

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        #: (route, query) of every request forwarded, in order
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.base_url = ""
        self._server = LoopbackServer("counting-proxy")
        self._session: Any = None

    def take(self) -> list[tuple[str, dict[str, str]]]:
        """The requests since the last ``take``."""
        taken, self.requests = self.requests, []
        return taken

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        route = query.pop("rest_route", None) or request.path.removeprefix("/wp-json") or "/"
        self.requests.append((route, query))
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")
        }
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            passed = {k: answer.headers[k] for k in self._PASSED if k in answer.headers}
            return web.Response(status=answer.status, body=body, headers=passed)

    async def _app(self) -> web.Application:
        import aiohttp

        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _close_session(self) -> None:
        await self._session.close()

    def __enter__(self) -> Self:
        self.base_url = self._server.start(self._app)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(then=self._close_session)


@pytest.fixture
def fixture_wordpress() -> Iterator[Callable[..., FixtureWordPress]]:
    """``fixture_wordpress(collections, ...)`` gives a started server, stopped after the test."""
    started: list[FixtureWordPress] = []

    def start(*args: Any, **kwargs: Any) -> FixtureWordPress:
        server = FixtureWordPress(*args, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# ----------------------------------------------------------------------------------------------
# Conformance cases (listed in cases.py). Expected figures come from a plain lxml parse of the
# export, never from the connectors.

_WP12 = "{https://wordpress.org/export/1.2/}"
CASE_SINCE = "2020-01-01T00:00:00Z"


def _plain_posts(path: Path, post_type: str) -> dict[str, str | None]:
    """post id → modified_gmt (post_date_gmt when absent) as ISO 8601 UTC, first occurrence."""
    from lxml import etree

    found: dict[str, str | None] = {}
    for item in etree.parse(str(path)).iter("item"):
        if item.findtext(f"{_WP12}post_type") != post_type:
            continue
        raw = item.findtext(f"{_WP12}post_modified_gmt") or item.findtext(f"{_WP12}post_date_gmt")
        stamp = raw.replace(" ", "T") + "Z" if raw and not raw.startswith("0000") else None
        found.setdefault(item.findtext(f"{_WP12}post_id") or "", stamp)
    return found


def _count_after(stamps: dict[str, str | None], since: str) -> int:
    return sum(1 for stamp in stamps.values() if stamp is not None and stamp > since)


def wxr_posts_case(request: pytest.FixtureRequest, tmp: Path) -> Any:
    from flowport.connectors.wxr import WxrSourceConfig

    from .cases import ConnectorCase
    from .conftest import open_descriptors_to

    path = tmp / "theme.xml"
    path.write_bytes(require_shared(THEME_UNIT_TEST).read_bytes())
    stamps = _plain_posts(path, "post")

    async def released() -> None:
        assert open_descriptors_to(path) == [], f"{path} is still open after an early close"

    return ConnectorCase(
        source=WxrSourceConfig(path=Path("theme.xml")).open(base_dir=tmp, env={}),  # type: ignore[arg-type]  # see SOURCE_TYPING
        expected_records=len(stamps),
        sample_key="1241",
        sample_fields={"slug": "template-sticky", "sticky": True, "type": "post"},
        since=CASE_SINCE,
        expected_since_records=_count_after(stamps, CASE_SINCE),
        since_is_inclusive=True,
        release_check=released,
    )


def wxr_categories_case(request: pytest.FixtureRequest, tmp: Path) -> Any:
    from lxml import etree

    from flowport.connectors.wxr import WxrSourceConfig

    from .cases import ConnectorCase

    path = require_shared(THEME_UNIT_TEST)
    slugs = {
        el.findtext(f"{_WP12}category_nicename")
        for el in etree.parse(str(path)).iter(f"{_WP12}category")
    }
    return ConnectorCase(
        source=WxrSourceConfig(path=path, kind="category").open(base_dir=tmp, env={}),  # type: ignore[arg-type]  # see SOURCE_TYPING
        expected_records=len(slugs),
        sample_key="category:child-2",
        sample_fields={"parent": "child-1", "name": "Child 2", "taxonomy": "category"},
    )


def rest_fixture_posts_case(request: pytest.FixtureRequest, tmp: Path) -> Any:
    from flowport.connectors.wordpress_rest import WordPressRestConfig

    from .cases import ConnectorCase

    template = load_json(require_shared(GHOST_REST) / "single-post.json")
    posts = []
    for number in range(1, 231):  # three pages of 100
        post = json.loads(json.dumps(template))
        post["id"] = number
        post["modified"] = post["modified_gmt"] = f"20{10 + number % 15:02d}-05-01T08:00:00"
        posts.append(post)
    server = FixtureWordPress({"posts": posts}).start()
    request.addfinalizer(server.stop)
    since = "2018-01-01T00:00:00Z"
    expected_since = sum(1 for post in posts if post["modified_gmt"] + "Z" > since)
    return ConnectorCase(
        source=WordPressRestConfig(base_url=server.base_url).open(base_dir=tmp, env={}),  # type: ignore[arg-type]  # see SOURCE_TYPING
        expected_records=len(posts),
        sample_key="7",
        sample_fields={"slug": template["slug"], "title": "My Awesome Post"},
        since=since,
        expected_since_records=expected_since,
        since_is_inclusive=True,
    )


def rest_wordpress_posts_case(request: pytest.FixtureRequest, tmp: Path) -> Any:
    from flowport.connectors.wordpress_rest import WordPressRestConfig

    from .cases import ConnectorCase

    site = ensure_wordpress(request.config)
    stamps = _plain_posts(require_shared(THEME_UNIT_TEST), "post")
    config = WordPressRestConfig(
        base_url=site.base_url, user_env="WP_USER", password_env="WP_APP_PASSWORD", status="any"
    )
    return ConnectorCase(
        source=config.open(base_dir=tmp, env=site.env()),  # type: ignore[arg-type]  # see SOURCE_TYPING
        expected_records=len(stamps),  # status=any: drafts and scheduled posts too
        sample_key="1241",
        sample_fields={"slug": "template-sticky", "sticky": True, "content_format": "raw"},
        since=CASE_SINCE,
        expected_since_records=_count_after(stamps, CASE_SINCE),
        since_is_inclusive=True,
        secrets=(site.app_password,),
    )
