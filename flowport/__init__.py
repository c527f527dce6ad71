"""flowport: move content into the Webflow CMS: fast, exact, resumable.

The library's facade::

    import flowport

    job = flowport.load_job("runs/demo.toml")  # or job_from_dict(d, name=...), job_from_toml
    summary = await flowport.run(job)        # a RunSummary; summary.exit_code as the CLI's
    preview = await flowport.plan(job)       # what a run would do; writes nothing
    problems = await flowport.validate(job)  # one line per problem; writes nothing
    summary = flowport.run_sync(job, on_progress=print)  # no event loop: a ProgressEvent a second
    for error in flowport.item_errors(job):  # ItemError: collection, key, field, kind, reason
        ...

    # a collection with source = { type = "dataframe", key = "sku" } reads a pandas frame:
    summary = await flowport.run(job, sources={"products": df})

Where things live:

- :mod:`flowport.base`: the error taxonomy and the Webflow models, below every stage;
- :mod:`flowport.connectors`: sources (CSV, SQL, WordPress REST and WXR, pandas DataFrames),
  one Protocol;
- :mod:`flowport.mappings`: field mappings and transforms, from a record to ``fieldData``;
- :mod:`flowport.pipeline`: the engine: job files, runner, writer, checkpoint log, Webflow
  client, the sandbox and the command line.

The names below are loaded on first use, so ``import flowport`` stays cheap for a process that
needs one part (a sandbox child, a connector).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowport.base.errors import (
        AuthError,
        ConfigError,
        FatalError,
        FlowportError,
        SourceError,
    )
    from flowport.pipeline.api import (
        item_errors,
        item_warnings,
        job_from_dict,
        job_from_toml,
        load_job,
        plan,
        plan_sync,
        run,
        run_sync,
        validate,
        validate_sync,
    )
    from flowport.pipeline.jobfile import Job, JobFileError
    from flowport.pipeline.logging import ProgressEvent
    from flowport.pipeline.results import ItemError, StandingWarning
    from flowport.pipeline.runner import RunSummary

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalError",
    "FlowportError",
    "ItemError",
    "Job",
    "JobFileError",
    "ProgressEvent",
    "RunSummary",
    "SourceError",
    "StandingWarning",
    "item_errors",
    "item_warnings",
    "job_from_dict",
    "job_from_toml",
    "load_job",
    "plan",
    "plan_sync",
    "run",
    "run_sync",
    "validate",
    "validate_sync",
]

_LAZY = {
    "AuthError": "flowport.base.errors",
    "ConfigError": "flowport.base.errors",
    "FatalError": "flowport.base.errors",
    "FlowportError": "flowport.base.errors",
    "SourceError": "flowport.base.errors",
    "Job": "flowport.pipeline.jobfile",
    "JobFileError": "flowport.pipeline.jobfile",
    "ProgressEvent": "flowport.pipeline.logging",
    "ItemError": "flowport.pipeline.results",
    "StandingWarning": "flowport.pipeline.results",
    "RunSummary": "flowport.pipeline.runner",
    **dict.fromkeys(
        (
            "item_errors",
            "item_warnings",
            "job_from_dict",
            "job_from_toml",
            "load_job",
            "plan",
            "plan_sync",
            "run",
            "run_sync",
            "validate",
            "validate_sync",
        ),
        "flowport.pipeline.api",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
