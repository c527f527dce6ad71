"""flowport's engine, installed as ``flowport.pipeline``.

- :mod:`.jobfile`: the job file, checked whole before anything runs;
- :mod:`.preflight`: every source opened and asked for its first record before the first write;
- :mod:`.runner` and :mod:`.stages`: one run of a job, as stages with a pure decide function and
  executors (live, plan);
- :mod:`.writer`, :mod:`.checkpoint`: batches to Webflow and the resumable log of every outcome;
- :mod:`.webflow`, :mod:`.retry`, :mod:`.ratebudget`: calling Webflow reliably within its limits;
- :mod:`.media`: images and files into Webflow's assets;
- :mod:`.frames`: DataFrames handed to a run from Python;
- :mod:`.dlt_destination`: flowport as a dlt pipeline's destination (the ``dlt`` extra);
- :mod:`.presets`: ready jobs (``flowport init wordpress``); :mod:`.sandbox`: the Webflow emulator;
- :mod:`.cli` and :mod:`.logging`: the command line and its output.

Library users start at :mod:`flowport`'s facade (:mod:`.api`)."""

from __future__ import annotations

__version__ = "0.1.0"
