"""``flowport.pipeline.sandbox.process``: a sandbox in a child process, as the crash tests and the
benchmarks use it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from flowport.pipeline.sandbox.process import sandbox_process

TOKEN = "process-test-token-9d2e"


def get(url: str, token: str = TOKEN) -> tuple[int, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_sandbox_child_serves_its_site_takes_faults_and_stops() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWPORT_SANDBOX_TOKEN"}
    with sandbox_process(token=TOKEN, seed=3, rate_limit=50, env=env) as sandbox:
        assert sandbox.base_url.startswith("http://127.0.0.1:")
        assert sandbox.base_url.endswith("/v2")
        # The token travels in the child's environment, never on its command line.
        assert TOKEN not in " ".join(str(arg) for arg in sandbox.process.args)  # type: ignore[union-attr]
        status, body = get(f"{sandbox.base_url}/sites/{sandbox.site_id}")
        assert status == 200
        assert isinstance(body, dict)
        assert body["id"] == sandbox.site_id
        assert get(f"{sandbox.base_url}/sites", token="wrong")[0] == 401

        sandbox.set_faults({"error_rate": 1.0})
        assert get(f"{sandbox.base_url}/sites")[0] in (500, 503)
        sandbox.set_faults()
        assert get(f"{sandbox.base_url}/sites")[0] == 200
        assert sandbox.stats()["totals"]["faults"]["error"] == 1
        assert sandbox.state()["sites"]
        process = sandbox.process
    assert process.poll() is not None  # stopped on leaving the block


def test_a_child_that_cannot_start_is_reported() -> None:
    with (
        pytest.raises(RuntimeError, match="the sandbox did not start"),
        sandbox_process(token=TOKEN, options={"duplicate_slug": "sometimes"}),
    ):
        pass
