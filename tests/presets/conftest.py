"""Fixtures for the preset tests: the theme unit test export, read straight from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ACCEPTANCE = SHARED / "acceptance-data"
THEME_UNIT_TEST = ACCEPTANCE / "wxr-theme-unit-test" / "themeunittestdata.wordpress.xml"
CORE_FIXTURES = ACCEPTANCE / "wp-rest-api-core-fixtures"


def require(path: Path) -> Path:
    """The path, or a skip with the reason (a failure when CI=true: CI never passes by skipping)."""
    if not path.exists():
        reason = f"{path} is absent (the shared acceptance data is not mounted)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: required, not skipped)")
        pytest.skip(reason)
    return path
