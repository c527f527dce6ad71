"""A job of generated rows whose every item can be told apart in the sandbox's state, for runs
that must write each row exactly once although a worker is killed mid-job (the Celery test and
benchmarks/bench_celery_resume.py, which imports this module).

The job ``<name>.toml`` reads ``<name>.csv`` (``rows`` rows keyed ``<name>-<n>``, see
:func:`source_keys`) into the collection :func:`display_name` gives, created by the run, with
each row's key in the item's ``source-key`` field.
"""

from __future__ import annotations

import csv
import textwrap
from dataclasses import dataclass
from pathlib import Path

#: The job's collection, as the run summary names it.
COLLECTION = "items"


def display_name(name: str) -> str:
    """The display name of job ``name``'s collection."""
    return f"Items {name}"


def source_keys(name: str, rows: int) -> list[str]:
    """The keys of job ``name``'s rows, in order."""
    return [f"{name}-{n:06d}" for n in range(rows)]


@dataclass(frozen=True, slots=True)
class KeyedJobSettings:
    """What a caller's jobs share: the token's variable, the pace, the batch size, and the
    requests in flight (None: flowport's default)."""

    token_env: str
    rate_limit: int
    window_seconds: float
    batch_size: int
    concurrency: int | None = None


def write_keyed_job(
    folder: Path, api: str, site_id: str, name: str, rows: int, settings: KeyedJobSettings
) -> Path:
    """Writes ``<name>.csv`` and the live job ``<name>.toml`` for the site in ``folder``; the
    job's path."""
    with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title"])
        writer.writerows(
            [key, f"Item {n} of {name}"] for n, key in enumerate(source_keys(name, rows))
        )
    concurrency = settings.concurrency
    in_flight = "" if concurrency is None else f"concurrency = {concurrency}"
    job = folder / f"{name}.toml"
    job.write_text(
        textwrap.dedent(
            """
            [destination]
            api = "{api}"
            site_id = "{site_id}"
            token_env = "{token_env}"
            rate_limit = {rate_limit}
            rate_window_seconds = {window_seconds}
            {in_flight}

            [run]
            mode = "live"
            batch_size = {batch_size}

            [collections.{collection}]
            target = "{display}"
            create_missing = true
            external_key_field = "source-key"
            source = {{ type = "csv", path = "{name}.csv", key = "id" }}
            slug_from = "name"
            fields = {{ name = "title", source-key = "id" }}

            [collections.{collection}.schema]
            singular_name = "Item {name}"
            fields = {{ source-key = "PlainText" }}
            """
        ).format(
            api=api,
            site_id=site_id,
            token_env=settings.token_env,
            rate_limit=settings.rate_limit,
            window_seconds=settings.window_seconds,
            in_flight=in_flight,
            batch_size=settings.batch_size,
            collection=COLLECTION,
            display=display_name(name),
            name=name,
        ),
        encoding="utf-8",
    )
    return job
