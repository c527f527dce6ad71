"""Before the first write: every source opens and gives its first record, within one budget.

A missing or empty file, a key column that is not in the header, a wrong WordPress password or a
URL that is not WordPress would otherwise be found after the run created collections and fields
on the site. Here each source is opened once, asked for its first record (and to check itself,
where it can do that more cheaply or more strictly: a hostile XML prolog), and kept open for the
run. The sources of one WordPress site share one discovery of it (its index, the login check)
for the whole run: see :func:`flowport.connectors.wordpress_api.one_discovery_per_site`.

A source that hangs fails within ``[run] source_check_seconds``, naming the collection, the
source and the setting; the read itself then meets no second wait.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import anyio

from flowport.base.errors import SourceError
from flowport.connectors import CheckedSource, Source
from flowport.connectors.wordpress_api import one_discovery_per_site
from flowport.pipeline.jobfile import Job

__all__ = ["check_source", "open_and_check_sources", "source_problems"]


async def check_source(name: str, source: Source, *, since: str | None, seconds: float) -> None:
    """The source opens and yields a first item (or ends: an empty source is not an error)."""
    try:
        with anyio.fail_after(seconds):
            if isinstance(source, CheckedSource):
                await source.check()
            async with contextlib.aclosing(source.records(since=since)) as records:
                await anext(records, None)
    except TimeoutError:
        raise SourceError(
            f"collections.{name}: {source.name} gave no first record within {seconds:g} s; "
            "check that it is reachable, or raise [run] source_check_seconds"
        ) from None
    except SourceError as error:
        text = str(error)
        if f"collections.{name}" in text:
            raise
        raise SourceError(f"collections.{name}: {text}") from None


async def open_and_check_sources(
    job: Job, cursors: Mapping[str, str | None] | None = None
) -> dict[str, Source]:
    """Every collection's source, opened and checked, in the job's write order."""
    opened: dict[str, Source] = {}
    for name in job.write_order():
        collection = job.collections[name]
        source = collection.source.open(base_dir=job.base_dir, env=os.environ)
        since = (cursors or {}).get(name) if collection.incremental else None
        await check_source(name, source, since=since, seconds=job.run.source_check_seconds)
        opened[name] = source
    return opened


async def source_problems(job: Job, *, files_only: bool = False) -> list[str]:
    """What ``validate`` says of the sources, one line each, writing nothing: every source (or,
    offline, every source read from a local file) opened and asked for its first record."""
    problems: list[str] = []
    with one_discovery_per_site():
        for name in job.write_order():
            config = job.collections[name].source
            if files_only and not isinstance(getattr(config, "path", None), Path):
                continue
            source = config.open(base_dir=job.base_dir, env=os.environ)
            try:
                await check_source(name, source, since=None, seconds=job.run.source_check_seconds)
            except SourceError as error:
                problems.append(str(error))
    return problems
