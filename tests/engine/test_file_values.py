"""The rule that compares media by source identity (pipeline/file_values.py)."""

from __future__ import annotations

from typing import Any

import pytest

from flowport.pipeline.file_values import Sameness, compare_values, dropped_files
from flowport.pipeline.stages.decide import content_match

FILE_ID = "62b720ef280c7a7a3be8cabe"
OTHER_ID = "62b720ef280c7a7a3be8cabf"
HOSTED = f"https://cdn.example/site/{FILE_ID}_cat%20photo.png"
SOURCE = "https://old.example/wp-content/uploads/cat%20photo.png?ver=2"

CASES: list[Any] = [
    # Webflow's copy of the source's file: the same by name.
    ({"url": SOURCE}, {"fileId": FILE_ID, "url": HOSTED, "alt": None}, Sameness.SAME_BY_NAME),
    # Case and punctuation aside (Webflow may tidy a name).
    (
        {"url": "https://old.example/Cat_Photo.PNG"},
        {"fileId": FILE_ID, "url": HOSTED},
        Sameness.SAME_BY_NAME,
    ),
    # Another file name: another file.
    (
        {"url": "https://old.example/cat-1.png"},
        {"fileId": FILE_ID, "url": HOSTED},
        Sameness.DIFFERENT,
    ),
    # The alt text must match.
    (
        {"url": SOURCE, "alt": "a cat"},
        {"fileId": FILE_ID, "url": HOSTED, "alt": None},
        Sameness.DIFFERENT,
    ),
    (
        {"url": SOURCE, "alt": "a cat"},
        {"fileId": FILE_ID, "url": HOSTED, "alt": "a cat"},
        Sameness.SAME_BY_NAME,
    ),
    # Not re-hosted (the url as given): exact urls only.
    ({"url": SOURCE}, {"fileId": FILE_ID, "url": SOURCE, "alt": None}, Sameness.SAME),
    (
        {"url": SOURCE},
        {"fileId": FILE_ID, "url": "https://b.example/cat%20photo.png"},
        Sameness.DIFFERENT,
    ),
    # An asset the assets stage uploaded: its id, or its name after <fileId>_.
    ({"fileId": FILE_ID}, {"fileId": FILE_ID, "url": HOSTED}, Sameness.SAME),
    ({"fileId": OTHER_ID}, {"fileId": FILE_ID, "url": HOSTED}, Sameness.DIFFERENT),
    (
        {"fileId": OTHER_ID, "url": f"https://cdn.example/site/{OTHER_ID}_cat%20photo.png"},
        {"fileId": FILE_ID, "url": HOSTED},
        Sameness.SAME_BY_NAME,
    ),
    # Nothing there, or not a file.
    ({"url": SOURCE}, None, Sameness.DIFFERENT),
    ({"url": SOURCE}, "text", Sameness.DIFFERENT),
    # MultiImage: as different as its most different image, in order.
    (
        [{"url": SOURCE}, {"fileId": FILE_ID}],
        [{"fileId": FILE_ID, "url": HOSTED}, {"fileId": FILE_ID, "url": HOSTED}],
        Sameness.SAME_BY_NAME,
    ),
    ([{"url": SOURCE}], [], Sameness.DIFFERENT),
    # Other values: equal, file ids aside.
    ("Don't panic", "Don't panic", Sameness.SAME),
    (42, 41, Sameness.DIFFERENT),
]


@pytest.mark.parametrize(("ours", "theirs", "expected"), CASES)
def test_media_compare_by_source_identity(ours: Any, theirs: Any, expected: Sameness) -> None:
    assert compare_values(ours, theirs) is expected


def test_content_match_names_the_fields_matched_by_file_name() -> None:
    ours = {"name": "A", "cover": {"url": SOURCE}, "doc": {"fileId": FILE_ID}}
    theirs = {
        "name": "A",
        "cover": {"fileId": FILE_ID, "url": HOSTED, "alt": None},
        "doc": {"fileId": FILE_ID, "url": HOSTED},
    }
    assert content_match(ours, theirs) == (True, ("cover",))
    assert content_match({**ours, "name": "B"}, theirs) == (False, ())


def test_dropped_files_names_each_file_webflow_left_out() -> None:
    sent = {
        "slug": "a",
        "cover": {"url": SOURCE},
        "doc": {"fileId": FILE_ID},
        "gallery": [{"url": "https://old.example/a.png"}, {"url": "https://old.example/b.png"}],
        "plain": "x",
    }
    stored = {
        "slug": "a",
        "doc": {"fileId": FILE_ID, "url": HOSTED},
        "gallery": [{"fileId": FILE_ID, "url": f"https://cdn.example/s/{FILE_ID}_b.png"}],
        "plain": "x",
    }
    assert dropped_files(sent, stored) == [
        ("cover", SOURCE),
        ("gallery", "https://old.example/a.png"),
    ]
    assert dropped_files(sent, {**stored, "cover": {"fileId": FILE_ID, "url": HOSTED}}) == [
        ("gallery", "https://old.example/a.png")
    ]
    # An answer without the item's values names nothing.
    assert dropped_files(sent, {}) == []
