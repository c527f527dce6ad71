"""A faithful local emulator of Webflow's CMS Data API v2, for tests, demos and benchmarks.

    async with Sandbox(SandboxConfig(tokens=("tok",))) as sandbox:
        sandbox.base_url  # http://127.0.0.1:PORT/v2

:class:`SandboxCore` is the synchronous in-memory state the server wraps; see README.md beside
this file for the behaviour it emulates and the choices made where Webflow's docs are silent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowport.pipeline.sandbox._config import FaultConfig, SandboxConfig

if TYPE_CHECKING:
    from flowport.pipeline.sandbox._core import ItemVariant, SandboxCore
    from flowport.pipeline.sandbox._errors import ApiError
    from flowport.pipeline.sandbox._server import Sandbox

__all__ = ["ApiError", "FaultConfig", "ItemVariant", "Sandbox", "SandboxConfig", "SandboxCore"]

# The server and its state are loaded on first use: the `flowport` CLI registers the sandbox
# command at every start, and a run against Webflow never needs the emulator itself.
_LAZY = {
    "ApiError": "flowport.pipeline.sandbox._errors",
    "ItemVariant": "flowport.pipeline.sandbox._core",
    "SandboxCore": "flowport.pipeline.sandbox._core",
    "Sandbox": "flowport.pipeline.sandbox._server",
}


# Hidden from type checkers: a module __getattr__ would make every unknown name importable (as
# Any), so a misspelt import of the sandbox would pass mypy; the names it serves are typed above.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)
