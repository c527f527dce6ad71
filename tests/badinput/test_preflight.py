"""Sources are checked before the first Webflow write: a source that cannot be read stops the
run with nothing written, naming the collection and the source; a hanging one within one budget."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowport.pipeline.sandbox import Sandbox
from tests.conftest import write_csv
from tests.connectors.wordpress_fixture import FixtureWordPress, fixture_wordpress  # noqa: F401

from .conftest import sandbox_items
from .test_corpus import assert_clean_abort, cli_run, make_job

WORDPRESS_USER_ENV = "FLOWPORT_PREFLIGHT_WP_USER"
WORDPRESS_PASSWORD_ENV = "FLOWPORT_PREFLIGHT_WP_PASSWORD"


def wordpress_source(base_url: str) -> str:
    return (
        f'{{ type = "wordpress", base_url = "{base_url}", resource = "posts", '
        f'user_env = "{WORDPRESS_USER_ENV}", password_env = "{WORDPRESS_PASSWORD_ENV}" }}'
    )


def assert_nothing_written(sandbox: Sandbox) -> None:
    assert sandbox_items(sandbox, "authors") == []
    assert sandbox_items(sandbox, "posts") == []


async def test_an_empty_csv_stops_the_run_before_any_write(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, posts=None)
    (tmp_path / "posts.csv").write_bytes(b"")
    result = await cli_run(path)
    assert_nothing_written(sandbox)
    assert_clean_abort(result, path, "collections.posts", "posts.csv", "empty")


async def test_a_missing_key_column_stops_the_run_before_any_write(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = make_job(tmp_path, sandbox, posts=None)
    write_csv(tmp_path / "posts.csv", ("identifier", "title"), [("p1", "One")])
    result = await cli_run(path)
    assert_nothing_written(sandbox)
    assert_clean_abort(result, path, "collections.posts", "key column 'id'")


async def test_a_wrong_wordpress_password_stops_the_run_before_any_write(
    tmp_path: Path,
    sandbox: Sandbox,
    fixture_wordpress: Callable[..., FixtureWordPress],  # noqa: F811
) -> None:
    site = fixture_wordpress({"posts": []}, user="editor", password="right-password")
    path = make_job(tmp_path, sandbox, posts_source=wordpress_source(site.base_url))
    result = await cli_run(
        path, **{WORDPRESS_USER_ENV: "editor", WORDPRESS_PASSWORD_ENV: "wrong-password"}
    )
    assert_nothing_written(sandbox)
    assert_clean_abort(result, path, "collections.posts", "editor")
    assert "wrong-password" not in result.output


async def test_a_url_that_is_not_wordpress_stops_the_run_before_any_write(
    tmp_path: Path,
    sandbox: Sandbox,
    fixture_wordpress: Callable[..., FixtureWordPress],  # noqa: F811
) -> None:
    # A site whose /wp-json/ and ?rest_route= both answer an HTML 404: not WordPress.
    site = fixture_wordpress({"posts": []}, pretty_permalinks=False)
    path = make_job(tmp_path, sandbox, posts_source=wordpress_source(site.base_url + "/blog"))
    result = await cli_run(path, **{WORDPRESS_USER_ENV: "u", WORDPRESS_PASSWORD_ENV: "p"})
    assert_nothing_written(sandbox)
    assert_clean_abort(result, path, "collections.posts")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a source that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


async def test_a_source_that_hangs_fails_within_one_budget(
    tmp_path: Path, sandbox: Sandbox, silent_server: int
) -> None:
    path = make_job(
        tmp_path, sandbox, posts_source=wordpress_source(f"http://127.0.0.1:{silent_server}")
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[run]\n", "[run]\nsource_check_seconds = 2\n"), encoding="utf-8")
    assert "source_check_seconds = 2" in path.read_text(encoding="utf-8")
    started = time.monotonic()
    result = await cli_run(path, **{WORDPRESS_USER_ENV: "u", WORDPRESS_PASSWORD_ENV: "p"})
    elapsed = time.monotonic() - started
    assert_nothing_written(sandbox)
    assert_clean_abort(result, path, "collections.posts", "source_check_seconds")
    assert elapsed < 30, f"the check waited {elapsed:.0f} s past its 2 s budget"
