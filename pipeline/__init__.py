"""flowport's engine: job files, the runner, writer and checkpoint log, the Webflow client, the
sandbox and the command line. Library users start at :mod:`flowport`'s facade (:mod:`.api`)."""

from __future__ import annotations

__version__ = "0.1.0"
