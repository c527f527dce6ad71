"""What a run asks a WordPress site (issue 16): one discovery per site per run, no count probes.

A run opens each collection's source several times (the check before the first write, the link
map, the read, the progress display's count) and each read opened a client of its own: the
theme-unit-test preset's run asked the real WordPress for its index 20 times, ``users/me`` 15
times and counted each collection with a one-item page, 40 of its 66 requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from flowport.base.errors import SourceError
from flowport.connectors.wordpress_api import one_discovery_per_site
from flowport.connectors.wordpress_rest import WordPressRestConfig, WordPressRestSource
from tests.conftest import run_cli
from tests.connectors.wordpress_fixture import (
    CountingProxy,
    FixtureWordPress,
    WordPressSite,
    fixture_wordpress,
    wordpress_site,
)

__all__ = ["fixture_wordpress", "wordpress_site"]  # fixtures used here, imported to register

Requests = list[tuple[str, dict[str, str]]]


def _index_reads(requests: Requests) -> int:
    return sum(1 for route, _ in requests if route == "/")


def _logins(requests: Requests) -> int:
    return sum(1 for route, _ in requests if route == "/wp/v2/users/me")


def _count_probes(requests: Requests) -> list[str]:
    """One-item pages read for their X-WP-Total alone (init's media probe excepted)."""
    return [route for route, query in requests if query.get("per_page") == "1"]


@pytest.mark.wordpress
@pytest.mark.shared
def test_a_preset_run_discovers_its_wordpress_once(
    wordpress_site: WordPressSite, tmp_path: Path
) -> None:
    env = wordpress_site.env()
    job_path = tmp_path / "wordpress.toml"
    with CountingProxy(wordpress_site.base_url) as proxy:
        init = run_cli(
            "init", "wordpress", proxy.base_url, "--out", str(job_path),
            "--user-env", "WP_USER", "--password-env", "WP_APP_PASSWORD",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert init.returncode == 0, init.stdout + init.stderr
        scanned = proxy.take()
        assert (_index_reads(scanned), _logins(scanned)) == (1, 1), scanned
        text = job_path.read_text(encoding="utf-8")
        job_path.write_text(text.replace('plan = "cms"', 'plan = "cms"\nrate_limit = 100000', 1))

        run = run_cli(
            "run", str(job_path), "--log-format", "json", "-q", cwd=tmp_path, env=env, timeout=300
        )
        asked = proxy.take()
    # Exit 1: the posts' featured images live on a host this machine cannot reach.
    assert run.returncode in (0, 1), run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    created = {name: counts.get("created", 0) for name, counts in summary["collections"].items()}
    assert created == {"authors": 3, "categories": 68, "tags": 114, "posts": 58, "pages": 21}
    assert _index_reads(asked) == 1, asked
    assert _logins(asked) == 1, asked
    assert _count_probes(asked) == [], asked


async def test_one_scope_shares_a_discovery_per_site_and_login(
    fixture_wordpress: Callable[..., FixtureWordPress],
) -> None:
    server = fixture_wordpress(
        {"posts": [{"id": 1, "slug": "a"}], "tags": [{"id": 2, "slug": "t", "name": "T"}]},
        user="editor",
        password="right pass",
    )

    def source(resource: str, password: str = "right pass") -> WordPressRestSource:
        config = WordPressRestConfig(
            base_url=server.base_url, resource=resource, user_env="U", password_env="P"
        )
        return config.open(base_dir=Path(), env={"U": "editor", "P": password})

    async def read(reader: WordPressRestSource) -> int:
        total = await reader.estimated_total()
        return len([record async for record in reader.records()]) + (total or 0)

    with one_discovery_per_site():
        assert await read(source("posts")) == 2
        assert await read(source("tags")) == 2
    within = server.requests[:]
    assert (_index_reads(within), _logins(within)) == (1, 1), within
    # The first read's count probe is needed (nothing was read yet); the second source's is too.
    assert len(_count_probes(within)) == 2, within

    server.requests.clear()
    with one_discovery_per_site():
        reader = source("posts")
        assert len([record async for record in reader.records()]) == 1
        assert await reader.estimated_total() == 1  # from the read's first page
        other_login = source("tags", password="wrong")  # checked on its own
        with pytest.raises(SourceError, match="did not accept the application password"):
            [record async for record in other_login.records()]
    again = server.requests[:]
    assert (_index_reads(again), _logins(again)) == (2, 2), again
    assert _count_probes(again) == [], again

    server.requests.clear()
    assert await read(source("posts")) == 2  # outside a scope, each client discovers the site
    assert await read(source("posts")) == 2
    assert _index_reads(server.requests) == 4, server.requests
