"""The Webflow Data API v2: typed models and the async client."""

from __future__ import annotations
