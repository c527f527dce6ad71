"""Every transform a job may name is documented in README's transforms table: a user looking for
one (``split``, for comma-separated references) finds it there, not only in the code."""

from __future__ import annotations

import re

from flowport.mappings.transforms import TRANSFORMS
from tests.conftest import REPO


def test_every_transform_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("| transform | argument | what it does |")
    table = readme[start : readme.index("\n\n", start)]
    documented = {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for name in
                  re.findall(r"`([a-z_]+)`", cell)}  # fmt: skip
    assert set(TRANSFORMS) <= documented, sorted(set(TRANSFORMS) - documented)
