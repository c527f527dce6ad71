"""What a run (or a plan) did, per collection and outcome: the value ``run_job`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["RunSummary"]


@dataclass(slots=True)
class RunSummary:
    job: str
    dry_run: bool = False
    collections: dict[str, dict[str, int]] = field(default_factory=dict)
    aborted: str | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    site_published: bool = False
    notes: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: A plan's first few warnings per collection (collection, key, field, kind, excerpt).
    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: Keys of records gone from the source whose items the job keeps, per collection.
    removals: dict[str, list[str]] = field(default_factory=dict)
    #: The assets stage's files: uploaded, bytes, deduplicated, reused (from the log), failed;
    #: a plan's planned (files a run would fetch).
    assets: dict[str, int] = field(default_factory=dict)
    #: Items changed in Webflow by someone else and in the source (the first few per
    #: collection): collection, key, item_id, changed_at, fields, outcome.
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: Retries per collection ("" for the site's own calls) and UTC second: [retries, 429s].
    #: The batch log has no row per attempt; this is what the run report draws them from.
    retry_timeline: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def count(self, collection: str, outcome: str, n: int = 1) -> None:
        if n:
            per = self.collections.setdefault(collection, {})
            per[outcome] = per.get(outcome, 0) + n

    def add(self, collection: str, counts: Mapping[str, int]) -> None:
        """The counts of one batch (a BatchOutcome's), from the code that did the work."""
        for outcome, n in counts.items():
            self.count(collection, outcome, n)

    def note_retry(
        self, collection: str, *, rate_limited: bool, at: datetime | None = None
    ) -> None:
        second = (at or datetime.now(UTC)).isoformat(timespec="seconds")
        tally = self.retry_timeline.setdefault(collection, {}).setdefault(second, [0, 0])
        tally[0] += 1
        tally[1] += int(rate_limited)

    def total(self, outcome: str) -> int:
        return sum(per.get(outcome, 0) for per in self.collections.values())

    @property
    def exit_code(self) -> int:
        if self.aborted is not None:
            return 3
        # A conflict left unwritten is a source change not applied: named, and not a success.
        troubles = ("failed", "publish_failed", "unresolved", "deletions_refused", "conflicts")
        if any(self.total(outcome) for outcome in troubles):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "job": self.job,
            "exit_code": self.exit_code,
            "aborted": self.aborted,
            "collections": self.collections,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "seconds": round(self.seconds, 3),
            "site_published": self.site_published,
        }
        if self.dry_run:
            result["dry_run"] = True
            result["samples"] = self.samples
            result["warnings"] = self.warnings
        if self.notes:
            result["notes"] = self.notes
        if self.removals:
            result["removals"] = self.removals
        if self.assets:
            result["assets"] = self.assets
        if self.conflicts:
            result["conflicts"] = self.conflicts
        if self.retry_timeline:
            result["retry_timeline"] = {
                name: [[second, *tally] for second, tally in sorted(per.items())]
                for name, per in self.retry_timeline.items()
            }
        return result
