"""Field mappings: from a source record to the ``fieldData`` Webflow accepts."""

from __future__ import annotations
