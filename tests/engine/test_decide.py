"""The rules of what becomes of a mapped record, as a table: one row per case, no I/O.

Each row gives what the map stage proposed, what the checkpoint log holds for the key, and the
foreign item the record would adopt (if any); it expects one decision.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from flowport.base.models import Item
from flowport.mappings import MappedItem, MappingFailure, SkippedRecord
from flowport.pipeline.checkpoint import ItemState, State
from flowport.pipeline.jobfile import ConflictPolicy
from flowport.pipeline.stages.decide import (
    REFERENCES_PENDING,
    Action,
    Decision,
    Proposal,
    WebflowEdit,
    decide,
    field_hashes_of,
    wants_foreign,
)
from flowport.pipeline.writer import Target

KEY = "k1"
FIELDS = {"name": "Hello", "slug": "hello"}
DEFERRED = {"parent": ("k0",)}


def proposal(
    *,
    target: Target = "live",
    deferred: bool = False,
    fields: dict[str, Any] | None = None,
    locale_failure: bool = False,
) -> Proposal:
    mapped = MappedItem(
        KEY, dict(fields or FIELDS), deferred_references=dict(DEFERRED) if deferred else {}
    )
    failure = MappingFailure(KEY, "name", "locale fr: field name: required")
    return Proposal(
        KEY,
        "f" * 32,
        mapped,
        target,
        "digest",
        locale_failure=failure if locale_failure else None,
    )


def stored(
    state: State = "done", content_hash: str = "digest", webflow_id: str | None = "wf1"
) -> ItemState:
    return ItemState(
        collection="posts",
        key=KEY,
        webflow_id=webflow_id,
        slug="hello",
        content_hash=content_hash,
        state=state,
        last_error=None,
        error_field=None,
        error_kind=None,
        attempts=0,
        batch_id=None,
        updated_at="2026-01-01T00:00:00+00:00",
    )


def foreign(fields: dict[str, Any] | None = None, *, published: bool = True) -> Item:
    data = {"name": "Hello", "slug": "theirs", **(fields or {})}
    return Item.model_validate(
        {
            "id": "their1",
            "fieldData": data,
            "lastPublished": "2026-01-01T00:00:00Z" if published else None,
        }
    )


PENDING = "digest" + REFERENCES_PENDING
SAME = {"slug": "theirs"}  # the foreign item's fields hold every value we would send

ROWS = [
    # -- records that never become a write ---------------------------------------------------
    pytest.param(
        Proposal(KEY, "f" * 32, MappingFailure(KEY, "name", "required")),
        None,
        None,
        Decision(Action.FAIL),
        id="mapping failure fails",
    ),
    pytest.param(
        proposal(locale_failure=True), None, None, Decision(Action.FAIL), id="locale failure fails"
    ),
    pytest.param(
        Proposal(KEY, "f" * 32, SkippedRecord(KEY, "status draft")),
        stored(),
        None,
        Decision(Action.SKIP),
        id="skipped record is skipped",
    ),
    # -- items this job wrote ----------------------------------------------------------------
    pytest.param(
        proposal(),
        stored(),
        None,
        Decision(Action.UNCHANGED, "live", "wf1", "digest"),
        id="done with the same hash is unchanged",
    ),
    pytest.param(
        proposal(target="staged"),
        stored("staged"),
        None,
        Decision(Action.UNCHANGED, "staged", "wf1", "digest"),
        id="staged with the same hash is unchanged (publishing is the finish stage's)",
    ),
    pytest.param(
        proposal(),
        stored(content_hash="other"),
        None,
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="done with another hash is updated",
    ),
    pytest.param(
        proposal(deferred=True),
        stored(content_hash="digest"),
        None,
        Decision(Action.UNCHANGED, "live", "wf1", "digest"),
        id="references set since: unchanged",
    ),
    pytest.param(
        proposal(deferred=True),
        stored(content_hash=PENDING),
        None,
        Decision(Action.DEFER, "live", "wf1", "digest", second_pass=True),
        id="written but references pending: second pass only",
    ),
    pytest.param(
        proposal(deferred=True),
        stored(content_hash="other"),
        None,
        Decision(Action.UPDATE, "live", "wf1", PENDING, second_pass=True),
        id="changed with deferred references: update, then second pass",
    ),
    pytest.param(
        proposal(),
        stored(content_hash=PENDING),
        None,
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="pending mark without deferred references any more: update",
    ),
    pytest.param(
        proposal(),
        stored("failed", webflow_id=None),
        None,
        Decision(Action.CREATE, "live", None, "digest"),
        id="failed before it existed: created",
    ),
    pytest.param(
        proposal(),
        stored("failed", content_hash="other"),
        None,
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="failed update of an existing item: updated again",
    ),
    pytest.param(
        proposal(),
        stored("failed"),
        None,
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="failed with the same hash: not trusted as unchanged",
    ),
    # -- items the job removed, back in the source ----------------------------------------------
    pytest.param(
        proposal(),
        stored("archived"),
        None,
        Decision(Action.UPDATE, "staged", "wf1", "digest"),
        id="archived item comes back through staging",
    ),
    pytest.param(
        proposal(),
        stored("unpublished", content_hash="other"),
        None,
        Decision(Action.UPDATE, "staged", "wf1", "digest"),
        id="unpublished item comes back through staging",
    ),
    pytest.param(
        proposal(target="draft"),
        stored("archived"),
        None,
        Decision(Action.UPDATE, "draft", "wf1", "digest"),
        id="removed item to a draft target stays a draft",
    ),
    # -- records new to the log ---------------------------------------------------------------
    pytest.param(
        proposal(), None, None, Decision(Action.CREATE, "live", None, "digest"), id="new: created"
    ),
    pytest.param(
        proposal(target="draft"),
        None,
        None,
        Decision(Action.CREATE, "draft", None, "digest"),
        id="new draft: created as a draft",
    ),
    pytest.param(
        proposal(deferred=True),
        None,
        None,
        Decision(Action.CREATE, "live", None, PENDING, second_pass=True),
        id="new with deferred references: created marked, then second pass",
    ),
    # -- adopting an item someone else put in the collection ------------------------------------
    pytest.param(
        proposal(fields=SAME),
        None,
        foreign(),
        Decision(Action.ADOPT, "live", "their1", "digest", slug="theirs", state="done"),
        id="foreign with the same content, published: adopted unchanged, done",
    ),
    pytest.param(
        proposal(fields=SAME, target="staged"),
        None,
        foreign(published=False),
        Decision(Action.ADOPT, "staged", "their1", "digest", slug="theirs", state="staged"),
        id="foreign with the same content, never published: adopted staged",
    ),
    pytest.param(
        proposal(fields=SAME, target="draft"),
        None,
        foreign(published=False),
        Decision(Action.ADOPT, "draft", "their1", "digest", slug="theirs", state="done"),
        id="foreign draft for a draft target: adopted done",
    ),
    pytest.param(
        proposal(fields={"name": "Hello", "slug": "theirs", "image": {"url": "u"}}),
        None,
        foreign({"image": {"url": "u", "fileId": "f1"}}),
        Decision(Action.ADOPT, "live", "their1", "digest", slug="theirs", state="done"),
        id="file ids Webflow added do not count as a difference",
    ),
    pytest.param(
        proposal(),
        None,
        foreign(),
        Decision(Action.ADOPT_UPDATE, "live", "their1", "digest"),
        id="foreign with other content: adopted with an update",
    ),
    pytest.param(
        proposal(fields=SAME, deferred=True),
        None,
        foreign(),
        Decision(Action.ADOPT_UPDATE, "live", "their1", PENDING, second_pass=True),
        id="foreign with deferred references: adopted with an update, then second pass",
    ),
    pytest.param(
        proposal(fields=SAME),
        stored("failed", webflow_id=None),
        foreign(),
        Decision(Action.ADOPT, "live", "their1", "digest", slug="theirs", state="done"),
        id="failed before it existed, foreign match: adopted",
    ),
]


@pytest.mark.parametrize(("proposed", "state", "their", "expected"), ROWS)
def test_decide(
    proposed: Proposal, state: ItemState | None, their: Item | None, expected: Decision
) -> None:
    if their is not None:
        assert wants_foreign(proposed, state)
    assert decide(proposed, state, their) == expected


EDIT = WebflowEdit("2026-02-01T00:00:00.000Z", ("name",))
#: What the log holds of the last write: name "Hello", pages 1.
WRITTEN = json.dumps(field_hashes_of({"name": "Hello", "slug": "hello", "pages": 1}))


def changed(**fields: Any) -> Proposal:
    """A record whose mapped values differ from the last write's where ``fields`` say."""
    data = {"name": "Hello", "slug": "hello", "pages": 1, **fields}
    return Proposal(KEY, "f" * 32, MappedItem(KEY, data), "live", "digest")


def written(field_hashes: str | None = WRITTEN, state: State = "done") -> ItemState:
    return replace(stored(state, content_hash="other"), field_hashes=field_hashes)


EDIT_ROWS = [
    pytest.param(
        changed(pages=2),
        written(),
        EDIT,
        "report",
        Decision(Action.CONFLICT, "live", "wf1", conflict="report"),
        id="changed in both places, report: not written",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        EDIT,
        "overwrite",
        Decision(Action.UPDATE, "live", "wf1", "digest", conflict="overwrite"),
        id="changed in both places, overwrite: updated whole",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        EDIT,
        "merge",
        Decision(Action.UPDATE, "live", "wf1", "digest", conflict="merge", fields=("pages",)),
        id="changed in both places, merge: only the fields the source changed",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        WebflowEdit("2026-02-01T00:00:00.000Z", ()),
        "report",
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="the change touched no field flowport writes (an SEO field): updated, nothing lost",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        WebflowEdit("2026-02-01T00:00:00.000Z", None),
        "report",
        Decision(Action.CONFLICT, "live", "wf1", conflict="report"),
        id="fields changed not known: reported",
    ),
    pytest.param(
        changed(pages=2),
        written(field_hashes=None),
        EDIT,
        "merge",
        Decision(Action.CONFLICT, "live", "wf1", conflict="merge"),
        id="merge without the last write's field hashes: reported",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        replace(EDIT, holds=field_hashes_of({"name": "Hello", "slug": "hello", "pages": 2})),
        "report",
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="Webflow holds the source's new values already (an answer lost, or the source "
        "took the editor's version): no conflict",
    ),
    pytest.param(
        changed(),
        replace(written(), content_hash="digest"),
        EDIT,
        "report",
        Decision(Action.UNCHANGED, "live", "wf1", "digest"),
        id="changed in Webflow only: nothing sent",
    ),
    pytest.param(
        changed(pages=2),
        written(),
        None,
        "report",
        Decision(Action.UPDATE, "live", "wf1", "digest"),
        id="changed in the source only: updated",
    ),
    pytest.param(
        changed(pages=2),
        written(state="archived"),
        EDIT,
        "report",
        Decision(Action.UPDATE, "staged", "wf1", "digest"),
        id="an item the job archived comes back whatever changed it",
    ),
]


@pytest.mark.parametrize(("proposed", "state", "edit", "policy", "expected"), EDIT_ROWS)
def test_decide_an_item_changed_in_webflow(
    proposed: Proposal,
    state: ItemState,
    edit: WebflowEdit | None,
    policy: ConflictPolicy,
    expected: Decision,
) -> None:
    assert decide(proposed, state, None, edit, policy) == expected


@pytest.mark.parametrize(
    ("proposed", "state", "wanted"),
    [
        pytest.param(proposal(), None, True, id="new record"),
        pytest.param(proposal(), stored("failed", webflow_id=None), True, id="never existed"),
        pytest.param(proposal(), stored(), False, id="ours in Webflow"),
        pytest.param(proposal(), stored("archived"), False, id="ours, archived"),
        pytest.param(
            Proposal(KEY, "f" * 32, MappingFailure(KEY, None, "bad")), None, False, id="failure"
        ),
        pytest.param(Proposal(KEY, "f" * 32, SkippedRecord(KEY, "x")), None, False, id="skip"),
        pytest.param(proposal(locale_failure=True), None, False, id="locale failure"),
    ],
)
def test_only_a_mapped_record_without_an_item_looks_for_one_to_adopt(
    proposed: Proposal, state: ItemState | None, wanted: bool
) -> None:
    # Looking a foreign item up takes it, so only records that may adopt one ask.
    assert wants_foreign(proposed, state) is wanted


def test_an_adoption_keeps_the_items_last_updated_as_flowports_own() -> None:
    # A later lastUpdated is someone else's change; the adopted item's own is not.
    theirs = Item.model_validate(
        {
            "id": "their1",
            "fieldData": {"name": "Hello", "slug": "theirs"},
            "lastPublished": "2026-01-01T00:00:00Z",
            "lastUpdated": "2026-01-02T00:00:00.000Z",
        }
    )
    decision = decide(proposal(fields=SAME), None, theirs)
    assert decision.action is Action.ADOPT
    assert decision.webflow_updated == "2026-01-02T00:00:00.000Z"
