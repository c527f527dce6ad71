"""The second pass's publishing counts in the run's summary, as the first pass's does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.logging import NullSink
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import FaultConfig, Sandbox
from tests.engine.test_runner import job_dir, job_text

__all__ = ["job_dir"]


class RefuseAfterFirstPass(NullSink):
    """Once the categories' first pass is published, Webflow refuses to publish one of them:
    only the second pass (which sets the parents and publishes again) meets the refusal."""

    def __init__(self, sandbox: Sandbox, slug: str) -> None:
        self.sandbox = sandbox
        self.slug = slug

    def collection_finished(self, collection: str, counts: Mapping[str, int]) -> None:
        if collection == "categories":
            self.sandbox.set_faults(FaultConfig(publish_refused_slugs=(self.slug,)))


async def test_a_publish_refused_in_the_second_pass_is_counted_and_fails_the_run(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    text = job_text(sandbox.base_url, sandbox.site_id).replace('mode = "live"', 'mode = "staged"')
    path.write_text(text)

    summary = await run_job(load_job(path), RefuseAfterFirstPass(sandbox, "europe"))

    categories: dict[str, Any] = summary.collections["categories"]
    assert categories["references_set"] == 5, summary.as_dict()
    assert categories["publish_failed"] == 1, summary.as_dict()
    # The first pass published all 7; the second pass published 4 of the 5 it changed.
    assert categories["published"] == 7 + 4, summary.as_dict()
    assert summary.exit_code == 1
    assert summary.as_dict()["collections"]["categories"]["publish_failed"] == 1
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        (error,) = [e for e in log.errors() if e.collection == "categories"]
        europe = log.lookup("categories", ["3"])["3"]
    assert error.key == "3"
    assert error.error_kind == "publish"
    assert europe.state == "staged"

    # Once Webflow publishes it again, the next run publishes what was left staged.
    sandbox.set_faults(FaultConfig())
    again = await run_job(load_job(path))
    assert again.exit_code == 0, again.as_dict()
    assert again.collections["categories"].get("published") == 1, again.as_dict()
