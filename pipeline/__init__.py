"""flowport's engine: job files, runner, writer, checkpoint log, Webflow client and sandbox."""

from __future__ import annotations

__version__ = "0.1.0"
