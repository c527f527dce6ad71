"""A sandbox in a process of its own, for whoever kills, times or measures a pipeline against it.

    with sandbox_process(token="t0k", rate_limit=120, window_seconds=6) as sandbox:
        sandbox.base_url, sandbox.site_id  # http://127.0.0.1:PORT/v2, the one site
        sandbox.stats()["totals"]["writes"]

The child is ``python -m flowport.pipeline.sandbox --port 0`` (so its CPU is not the caller's,
and the caller can SIGKILL a pipeline without touching it); it prints its base URL, which this
reads. The token reaches it through ``FLOWPORT_SANDBOX_TOKEN``, never its command line.
Everything here is synchronous (``urllib``): callers are test harnesses and benchmarks, not event
loops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SandboxProcess", "sandbox_process"]

#: Seconds to wait on the child's inspection routes and for it to stop.
_TIMEOUT = 60.0


@dataclass
class SandboxProcess:
    """A running sandbox child: where it listens, its site, and its inspection routes."""

    process: subprocess.Popen[str]
    base_url: str
    site_id: str

    @property
    def root_url(self) -> str:
        """Where the inspection routes (``/_sandbox/...``) live, outside ``/v2``."""
        return self.base_url.removesuffix("/v2")

    def inspect(self, route: str) -> Any:
        return _call(self.root_url + route)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.inspect("/_sandbox/state")
        return state

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.inspect("/_sandbox/stats")
        return stats

    def set_faults(self, faults: Mapping[str, float] | None = None) -> None:
        """Replace the fault rates (``{"error_rate": 0.05}``); none given: no faults."""
        _call(self.root_url + "/_sandbox/faults", body=dict(faults or {}))


@contextmanager
def sandbox_process(
    *,
    token: str,
    seed: int = 0,
    rate_limit: int = 100_000,
    window_seconds: float = 60.0,
    item_limit: int | None = None,
    options: Mapping[str, float | int | str] | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[SandboxProcess]:
    """Start a sandbox child, yield it once it answers, stop it (SIGTERM, then SIGKILL) on exit.

    ``options`` are the sandbox command's other options by their Python names
    (``{"slow_rate": 0.3, "duplicate_slug": "suffix"}``); ``env`` replaces the child's
    environment (the caller's by default), to which the token is added.
    """
    command = [
        python, "-m", "flowport.pipeline.sandbox", "--host", "127.0.0.1", "--port", "0",
        "--seed", str(seed), "--rate-limit", str(rate_limit),
        "--window-seconds", str(window_seconds),
    ]  # fmt: skip
    if item_limit is not None:
        command += ["--item-limit", str(item_limit)]
    for name, value in (options or {}).items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    child_env = {**(os.environ if env is None else env), "FLOWPORT_SANDBOX_TOKEN": token}
    # S603: this Python running the sandbox module with options of known names.
    process = subprocess.Popen(  # noqa: S603
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env,
        cwd=cwd,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the sandbox did not start (exit {process.poll()}): {base_url!r}")
        yield SandboxProcess(process, base_url, _site_id(base_url, token))
    finally:
        process.terminate()
        try:
            process.wait(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _site_id(base_url: str, token: str) -> str:
    return str(_call(base_url + "/sites", token=token)["sites"][0]["id"])


def _call(url: str, *, token: str | None = None, body: Any = None) -> Any:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not the sandbox child's loopback address: {url!r}")
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    # S310: the scheme and host are checked above (the child's own http://127.0.0.1 address).
    request = urllib.request.Request(  # noqa: S310
        url, data=data, headers=headers, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as answer:  # noqa: S310
        return json.load(answer)
