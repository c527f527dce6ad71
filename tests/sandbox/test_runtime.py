"""Rate limits, seeded faults, inspection, persistence across restarts and SIGKILL, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flowport.pipeline.sandbox import FaultConfig, Sandbox, SandboxConfig
from tests.conftest import REPO, TOKEN
from tests.sandbox.conftest import Api, SandboxFactory, TimeControl


async def test_rate_limit_counts_every_request_in_a_fixed_window(
    make_sandbox: SandboxFactory, clock: TimeControl
) -> None:
    _, api = await make_sandbox(rate_limit=3, window_seconds=1.0)
    remaining = []
    for _ in range(3):
        answer = await api.get("/sites")
        assert answer.status == 200
        remaining.append(answer.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    clock.advance(0.25)
    over = await api.get("/sites")
    assert over.status == 429
    assert over.body["code"] == "too_many_requests"
    assert float(over.headers["Retry-After"]) == pytest.approx(0.75)
    assert over.headers["X-RateLimit-Limit"] == "3"
    assert over.headers["X-RateLimit-Remaining"] == "0"
    clock.advance(0.75)
    again = await api.get("/sites")
    assert again.status == 200
    assert again.headers["X-RateLimit-Remaining"] == "2"


async def test_each_token_has_its_own_budget(make_sandbox: SandboxFactory) -> None:
    _, api = await make_sandbox(tokens=(TOKEN, "second"), rate_limit=1, window_seconds=60)
    assert (await api.get("/sites")).status == 200
    assert (await api.get("/sites")).status == 429
    assert (await api.get("/sites", token="second")).status == 200


async def test_error_fault_answers_5xx_and_does_not_write(make_sandbox: SandboxFactory) -> None:
    sandbox, api = await make_sandbox()
    collection_id = await api.collection()
    sandbox.set_faults(FaultConfig(error_rate=1.0))
    answer = await api.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": "x"}}
    )
    assert answer.status in (500, 503)
    assert answer.body["code"] in ("internal_error", "service_unavailable")
    assert "X-RateLimit-Remaining" in answer.headers
    state = await api.get(sandbox.root_url + "/_sandbox/state")
    assert state.status == 200
    assert state.body["collections"][0]["items"] == []


async def test_error_fault_limited_to_a_method_spares_the_others(
    make_sandbox: SandboxFactory,
) -> None:
    sandbox, api = await make_sandbox()
    collection_id = await api.collection()
    sandbox.set_faults(FaultConfig(error_rate=1.0, error_methods=("PATCH",)))
    created = await api.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": "x"}}
    )
    assert created.status in (200, 202), created.body
    item_id = created.body["id"]
    assert (await api.get(f"/collections/{collection_id}/items")).status == 200
    update = {"items": [{"id": item_id, "fieldData": {"name": "y"}}]}
    refused = await api.patch(f"/collections/{collection_id}/items", update)
    assert refused.status in (500, 503)
    sandbox.set_faults(FaultConfig())
    listed = await api.get(f"/collections/{collection_id}/items")
    assert [i["fieldData"]["name"] for i in listed.body["items"]] == ["x"]


async def test_faults_are_deterministic_for_a_seed(make_sandbox: SandboxFactory) -> None:
    sequences = []
    for _ in range(2):
        _, api = await make_sandbox(seed=7, faults=FaultConfig(error_rate=0.5))
        sequences.append([(await api.get("/sites")).status for _ in range(30)])
    assert sequences[0] == sequences[1]
    assert {200, 500, 503} >= set(sequences[0])
    assert len(set(sequences[0])) > 1


async def test_burst_fault_answers_429_for_the_next_requests(make_sandbox: SandboxFactory) -> None:
    sandbox, api = await make_sandbox(window_seconds=60.0)
    sandbox.set_faults(FaultConfig(burst_429_rate=1.0, burst_429_length=3))
    first = await api.get("/sites")
    assert first.status == 429
    # One request slot is 0.5 s; on Webflow's one-minute window Retry-After is whole seconds.
    assert first.headers["Retry-After"] == "1"
    sandbox.set_faults(FaultConfig())
    statuses = [(await api.get("/sites")).status for _ in range(3)]
    assert statuses == [429, 429, 200]


async def test_slow_fault_still_answers_normally(make_sandbox: SandboxFactory) -> None:
    sandbox, api = await make_sandbox(faults=FaultConfig(slow_rate=1.0, slow_seconds=0.01))
    assert (await api.get("/sites")).status == 200
    assert sandbox.stats()["totals"]["faults"]["slow"] == 1


async def test_commit_then_drop_applies_the_write_and_closes_the_connection(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.jsonl"
    sandbox, api = await make_sandbox(state_file=state_file)
    collection_id = await api.collection()
    toggled = await api.post(
        sandbox.root_url + "/_sandbox/faults", {"commit_then_drop_rate": 1.0}, token=None
    )
    assert toggled.status == 200
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(
            f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": "kept"}}
        )
    await api.post(sandbox.root_url + "/_sandbox/faults", {}, token=None)
    listed = await api.get(f"/collections/{collection_id}/items")
    assert [i["fieldData"]["slug"] for i in listed.body["items"]] == ["kept"]
    await sandbox.stop()
    _, api2 = await make_sandbox(state_file=state_file)
    listed = await api2.get(f"/collections/{collection_id}/items")
    assert [i["fieldData"]["slug"] for i in listed.body["items"]] == ["kept"]


async def test_faults_never_touch_inspection(make_sandbox: SandboxFactory) -> None:
    sandbox, api = await make_sandbox(faults=FaultConfig(error_rate=1.0, burst_429_rate=1.0))
    for path in ("/_sandbox/state", "/_sandbox/stats", "/_sandbox/faults"):
        answer = await api.get(sandbox.root_url + path, token=None)
        assert answer.status == 200


async def test_bad_fault_config_is_rejected(sandbox: Sandbox, api: Api) -> None:
    answer = await api.post(sandbox.root_url + "/_sandbox/faults", {"error_rate": 2}, token=None)
    assert answer.status == 400
    assert answer.body["code"] == "validation_error"


async def test_stats_count_by_route_method_and_status(sandbox: Sandbox, api: Api) -> None:
    await api.get("/sites")
    await api.get("/sites")
    collection_id = await api.collection()
    await api.item(collection_id, "a")
    await api.get("/sites", token="nope")
    stats = await api.get(sandbox.root_url + "/_sandbox/stats", token=None)
    rows = {(r["method"], r["route"], r["status"]): r["count"] for r in stats.body["endpoints"]}
    assert rows[("GET", "/v2/sites", 200)] == 2
    assert rows[("GET", "/v2/sites", 401)] == 1
    assert rows[("POST", "/v2/collections/{collection_id}/items", 202)] == 1
    assert stats.body["totals"]["requests"] == 5
    assert stats.body["totals"]["writes"] == 2


async def test_reset_restores_a_fresh_site(sandbox: Sandbox, api: Api) -> None:
    await api.collection()
    answer = await api.post(sandbox.root_url + "/_sandbox/reset", token=None)
    assert answer.status == 200
    assert answer.body["siteId"] == sandbox.site_id
    listed = await api.get(f"/sites/{sandbox.site_id}/collections")
    assert listed.body["collections"] == []


async def test_state_survives_a_clean_restart(make_sandbox: SandboxFactory, tmp_path: Path) -> None:
    state_file = tmp_path / "state.jsonl"
    sandbox, api = await make_sandbox(state_file=state_file)
    collection_id = await api.collection()
    first = await api.item(collection_id, "first")
    await api.post(f"/collections/{collection_id}/items/publish", {"itemIds": [first["id"]]})
    site_id = sandbox.site_id
    await sandbox.stop()
    again, api2 = await make_sandbox(state_file=state_file)
    assert again.site_id == site_id
    live = await api2.get(f"/collections/{collection_id}/items/{first['id']}/live")
    assert live.status == 200
    second = await api2.item(collection_id, "second")
    assert second["id"] != first["id"]
    duplicate = await api2.post(
        f"/collections/{collection_id}/items", {"fieldData": {"name": "x", "slug": "first"}}
    )
    assert duplicate.status == 400


async def test_torn_last_journal_line_is_ignored(
    make_sandbox: SandboxFactory, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.jsonl"
    sandbox, api = await make_sandbox(state_file=state_file)
    collection_id = await api.collection()
    await api.item(collection_id, "kept")
    await sandbox.stop()
    # What a kill in the middle of the journal write of a never-answered request leaves behind.
    with state_file.open("ab") as handle:
        handle.write(b'{"n": 99, "ops": [{"op": "ite')
    _, api2 = await make_sandbox(state_file=state_file)
    listed = await api2.get(f"/collections/{collection_id}/items")
    assert [i["fieldData"]["slug"] for i in listed.body["items"]] == ["kept"]


@contextlib.contextmanager
def running_cli(*args: str, env_token: str | None = "cli-token") -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != "FLOWPORT_SANDBOX_TOKEN"}
    if env_token is not None:
        env["FLOWPORT_SANDBOX_TOKEN"] = env_token
    with subprocess.Popen(
        [sys.executable, "-m", "flowport.pipeline.sandbox", "--port", "0", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)


def _base_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), line
    assert line.endswith("/v2")
    assert not line.endswith(":0/v2")
    return line


async def _request(method: str, url: str, body: object = None, token: str = "cli-token") -> Any:
    async with (
        aiohttp.ClientSession() as client,
        client.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return await response.json()


async def test_cli_serves_until_sigterm() -> None:
    with running_cli("--rate-limit", "50") as process:
        base = await asyncio.to_thread(_base_url, process)
        sites = await _request("GET", f"{base}/sites")
        assert len(sites["sites"]) == 1
        refused = await _request("GET", f"{base}/sites", token="other")
        assert refused["code"] == "not_authorized"
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    assert code == 0


async def test_cli_refuses_to_start_without_a_token() -> None:
    with running_cli(env_token=None) as process:
        _, err = await asyncio.to_thread(process.communicate, None, 30)
    assert process.returncode == 2
    assert "FLOWPORT_SANDBOX_TOKEN" in err


async def test_cli_reads_the_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    with running_cli("--token-file", str(token_file), env_token=None) as process:
        base = await asyncio.to_thread(_base_url, process)
        sites = await _request("GET", f"{base}/sites", token="from-file")
        assert "sites" in sites
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 30)
    assert code == 0


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    state = str(tmp_path / "state.jsonl")
    with running_cli("--state", state) as process:
        base = await asyncio.to_thread(_base_url, process)
        sites = await _request("GET", f"{base}/sites")
        site_id = sites["sites"][0]["id"]
        collection = await _request(
            "POST", f"{base}/sites/{site_id}/collections", {"displayName": "P", "singularName": "P"}
        )
        items = [{"fieldData": {"name": f"n{i}", "slug": f"n-{i}"}} for i in range(50)]
        created = await _request(
            "POST", f"{base}/collections/{collection['id']}/items", {"items": items}
        )
        assert len(created["items"]) == 50
        process.kill()
        await asyncio.to_thread(process.wait, 30)
    with running_cli("--state", state) as restarted:
        base = await asyncio.to_thread(_base_url, restarted)
        listed = await _request("GET", f"{base}/collections/{collection['id']}/items")
        assert listed["pagination"]["total"] == 50
        restarted.send_signal(signal.SIGTERM)
        await asyncio.to_thread(restarted.wait, 30)


async def test_config_repr_hides_tokens() -> None:
    config = SandboxConfig(tokens=("very-secret-token",))
    assert "very-secret-token" not in repr(config)
    assert "very-secret-token" not in str(config)
