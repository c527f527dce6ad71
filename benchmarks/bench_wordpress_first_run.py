"""A first run of the theme-unit-test WordPress preset into a fresh sandbox at 120 requests a
minute (issue 16): its schema setup requests and its wall time.

    .venv/bin/python benchmarks/bench_wordpress_first_run.py

Needs a real WordPress: the one ``WP_BASE_URL``/``WP_USER``/``WP_APP_PASSWORD`` name (as
``../shared/wordpress/wp-local.sh env`` prints them), else this starts one with wp-local.sh
(seeded with the theme unit test export; root needed) and resets it afterwards. ``flowport init
wordpress`` writes the job; ``flowport run`` writes it into a sandbox in its own process that
allows Webflow's 120 requests a minute (the CMS plan's), in real time. Counted by the sandbox:
setup requests (collections and fields: list, create, read) against the target of collections
+ 1, and every request. The run ends 1 when the posts' featured images (on
wpthemetestdata.files.wordpress.com) cannot be fetched from this machine; that is not a failure
of the figure.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BENCH_TOKEN_ENV,
    FLOWPORT,
    REPO,
    print_json,
    run_flowport,
    sandbox_process,
    scratch_dir,
)

__all__ = ["run"]

WP_LOCAL = REPO.parent / "shared" / "wordpress" / "wp-local.sh"
_SETUP_ROUTES = ("/v2/sites/{site_id}/collections", "/v2/collections/{collection_id}")


def _setup_route(route: str) -> bool:
    return route in _SETUP_ROUTES or route.startswith("/v2/collections/{collection_id}/fields")


@contextmanager
def wordpress() -> Iterator[dict[str, str]]:
    """The WordPress the environment names, else one started for the benchmark."""
    if os.environ.get("WP_BASE_URL"):
        yield {k: os.environ[k] for k in ("WP_BASE_URL", "WP_USER", "WP_APP_PASSWORD")}
        return
    database = f"flowport_bench_wp_{os.getpid()}_{secrets.token_hex(3)}"
    wp = ["bash", str(WP_LOCAL)]
    with socket.socket() as probe:  # a free loopback port for its php -S
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    subprocess.run(
        [*wp, "start", "--db", database, "--port", port], check=False, capture_output=True
    )
    try:
        started = subprocess.run(
            [*wp, "env", "--db", database], check=True, capture_output=True, text=True
        )
        values: dict[str, str] = {}
        for line in started.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] == ["export"]:
                values.update(word.partition("=")[::2] for word in words[1:] if "=" in word)
        yield values
    finally:
        subprocess.run([*wp, "reset", "--db", database], check=False, capture_output=True)


def run(quick: bool = False) -> dict[str, Any]:
    """``quick`` changes nothing: the export is the size it is."""
    with (
        wordpress() as site,
        scratch_dir("wordpress-first-run") as folder,
        sandbox_process(rate_limit=120, window_seconds=60.0, item_limit=10_000) as sandbox,
    ):
        env = {**os.environ, **site, BENCH_TOKEN_ENV: "unused"}
        init = subprocess.run(
            [
                FLOWPORT, "init", "wordpress", site["WP_BASE_URL"], "--out", "wp.toml",
                "--user-env", "WP_USER", "--password-env", "WP_APP_PASSWORD",
                "--target-api", sandbox.base_url, "--site-id", sandbox.site_id,
                "--token-env", BENCH_TOKEN_ENV,
            ],
            cwd=folder, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            return {"error": f"flowport init failed: {(init.stdout + init.stderr)[-600:]}"}
        collections = len(tomllib.loads((folder / "wp.toml").read_text("utf-8"))["collections"])
        saved = {k: os.environ.get(k) for k in site}
        os.environ.update(site)  # the run's child reads the application password from these
        try:
            result = run_flowport("run", "wp.toml", "--log-format", "json", folder=folder)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        stats = sandbox.stats()
    setup = sum(row["count"] for row in stats["endpoints"] if _setup_route(row["route"]))
    # A reference to the collection itself cannot go in its create request (no id yet).
    fields_added = sum(
        row["count"] for row in stats["endpoints"] if row["route"].endswith("/fields")
    )
    finished = result.finished
    return {
        "command": "flowport init wordpress WP_URL; flowport run wp.toml (sandbox: 120/min)",
        "collections": collections,
        "setup_requests": setup,
        "setup_target": collections + 1,
        "fields_added_after_create": fields_added,
        "requests": sum(row["count"] for row in stats["endpoints"]),
        "wall_seconds": round(result.wall_seconds, 1),
        "exit_code": result.exit_code,
        "created": sum(c.get("created", 0) for c in finished.get("collections", {}).values()),
        "met": setup <= collections + 1,
        "counts": json.dumps(finished.get("collections", {})),
    }


def main() -> None:
    print_json(run())


if __name__ == "__main__":
    main()
