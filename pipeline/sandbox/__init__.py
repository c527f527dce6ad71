"""A faithful local emulator of Webflow's CMS Data API v2, for tests, demos and benchmarks.

    async with Sandbox(SandboxConfig(tokens=("tok",))) as sandbox:
        sandbox.base_url  # http://127.0.0.1:PORT/v2

:class:`SandboxCore` is the synchronous in-memory state the server wraps; see README.md beside
this file for the behaviour it emulates and the choices made where Webflow's docs are silent.
"""

from __future__ import annotations

from pipeline.sandbox._config import FaultConfig, SandboxConfig
from pipeline.sandbox._core import ItemVariant, SandboxCore
from pipeline.sandbox._errors import ApiError
from pipeline.sandbox._server import Sandbox

__all__ = ["ApiError", "FaultConfig", "ItemVariant", "Sandbox", "SandboxConfig", "SandboxCore"]
