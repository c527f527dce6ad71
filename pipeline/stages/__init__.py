"""The engine's stages: how one run of a job goes, a module each.

A collection's records flow through stages joined by small bounded streams, every task owned
by the collection's one task group (:mod:`.collection`):

- :mod:`.edits`: before the records, one listing of the items changed in Webflow by someone else
  since flowport last wrote them (a conflict when the record changed too);
- :mod:`.read`: source batches → chunks of 500, fingerprinted and sorted against the log
  (repeated keys, records unchanged since they were written); the incremental cursor
  (:mod:`.cursor`) observes every record;
- :mod:`.mapping`: mapping, slug settling (:mod:`.claims`), secondary locales, content hashes;
- :mod:`.route`: the decide stage, which puts every record through the pure rules of
  :mod:`.decide` (unchanged / adopt / create / update / defer / fail / skip / conflict) and
  routes the outcome;
- dispatch (in :mod:`.collection`): writes gathered into batches per operation and target,
  handed to the workers;
- :mod:`.finish`: vanished records, publishing what was staged, counts, the cursor's commit.

Around the collections: :mod:`.schema` (what each collection's items will meet, made ready
before the first write) and :mod:`.second_pass` (references set once every item of a cycle
exists, kept on disk meanwhile). What is *done* about each decision is an executor's
(:mod:`.executors`): the live one writes to Webflow and the checkpoint log, the plan one
(``flowport plan``) only counts and samples. :mod:`.summary` holds the run's result.
``flowport.pipeline.runner`` puts them together.
"""

from __future__ import annotations

__all__: list[str] = []
