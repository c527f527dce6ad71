"""A stable fingerprint of what an item would be written as, so unchanged items are not sent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["content_hash"]


def content_hash(field_data: Mapping[str, Any], status: str | None) -> str:
    """sha256 over canonical JSON (sorted keys, no spaces, UTF-8), first 32 hex characters."""
    canonical = json.dumps(
        {"fieldData": field_data, "status": status},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
