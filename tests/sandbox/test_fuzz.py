"""Schemathesis, driven by Webflow's spec, throws generated requests at every sandbox operation.

The fuzzer reads :func:`normalized_spec` (the same reading of the spec the validator uses) and
sends positive (schema-valid) and negative (schema-breaking) requests over real HTTP. Each answer
must not be a 5xx, must use a documented status and content type, and must match the documented
schema; the project's own validator checks it as well (rate headers, error bodies). Path ids are
pinned to a seeded collection, item, field and asset so the requests reach the handlers instead
of 404.

Bounded on purpose: derandomized (the same examples every run), no shrinking, a small
``max_examples`` per operation and mode; destructive operations run last, on their own targets.

Random negative cases rarely put a wrongly typed value at one particular place (25 examples never
sent a field ``type`` as an object, nor ``cmsLocaleId`` as a number, and both crashed the sandbox
with a 500), so a second, exhaustive pass does: for every operation with a JSON body, a body with
every property the spec declares (and one with only the required ones), then each value in it, at
every depth, replaced in turn by a value of every other JSON type. Each answer must be a
documented 4xx/2xx with Webflow's error body, never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio.to_thread
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TOKEN

from .spec_validator import (
    SANDBOX_OPERATION_IDS,
    ConformanceError,
    normalized_spec,
    require_spec,
    spec_validator,
)

pytestmark = [pytest.mark.shared, pytest.mark.slow]

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Run order: reads, then writes, then removals, so earlier operations still find their targets.
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 2, "DELETE": 3}


@dataclass(frozen=True)
class Targets:
    site_id: str
    collection_id: str
    field_id: str
    item_id: str
    live_item_id: str
    doomed_collection_id: str
    doomed_field_id: str
    doomed_item_id: str
    asset_id: str
    doomed_asset_id: str

    def path_parameters(self, operation_id: str, names: set[str]) -> dict[str, str]:
        doomed = operation_id in {
            "delete-collection", "delete-field", "delete-item", "delete-asset"
        }  # fmt: skip
        collection = self.doomed_collection_id if operation_id == "delete-collection" else None
        values = {
            "site_id": self.site_id,
            "collection_id": collection or self.collection_id,
            "field_id": self.doomed_field_id if doomed else self.field_id,
            "item_id": self.doomed_item_id if doomed else self.item_id,
            "asset_id": self.doomed_asset_id if doomed else self.asset_id,
        }
        if "live" in operation_id:
            values["item_id"] = self.live_item_id
        return {name: values[name] for name in names}


async def _post(session: aiohttp.ClientSession, url: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(url, json=body, headers=headers) as response:
        payload = await response.json()
        assert response.status in (200, 202), (url, response.status, payload)
        return payload


async def _seed(base_url: str, site_id: str) -> Targets:
    async with aiohttp.ClientSession() as session:
        collection = await _post(
            session,
            f"{base_url}/sites/{site_id}/collections",
            {"displayName": "Fuzzed", "singularName": "Fuzzed", "slug": "fuzzed"},
        )
        doomed_collection = await _post(
            session,
            f"{base_url}/sites/{site_id}/collections",
            {"displayName": "Doomed", "singularName": "Doomed", "slug": "doomed"},
        )
        fields_url = f"{base_url}/collections/{collection['id']}/fields"
        kept_field = await _post(session, fields_url, {"type": "PlainText", "displayName": "Kept"})
        doomed_field = await _post(
            session, fields_url, {"type": "PlainText", "displayName": "Gone"}
        )
        items_url = f"{base_url}/collections/{collection['id']}/items"
        ids = []
        for slug in ("staged", "live", "doomed"):
            created = await _post(session, items_url, {"fieldData": {"name": slug, "slug": slug}})
            ids.append(created["id"])
        await _post(session, f"{items_url}/publish", {"itemIds": [ids[1]]})
        asset_ids = [
            (await _post(session, f"{base_url}/sites/{site_id}/assets", {
                "fileName": f"{name}.png", "fileHash": "0" * 32
            }))["id"]
            for name in ("kept", "doomed")
        ]  # fmt: skip
    return Targets(
        site_id=site_id,
        collection_id=collection["id"],
        field_id=kept_field["id"],
        item_id=ids[0],
        live_item_id=ids[1],
        doomed_collection_id=doomed_collection["id"],
        doomed_field_id=doomed_field["id"],
        doomed_item_id=ids[2],
        asset_id=asset_ids[0],
        doomed_asset_id=asset_ids[1],
    )


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    # Checked before the sandbox starts, so a missing spec skips (or fails in CI) at once.
    require_spec()
    # Real time and no reachable limit: the folder's hand-moved clock is for the tests of time.
    return {"rate_limit": 1_000_000, "window_seconds": 60.0, "seed": 0}


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, str],
    base_url: str,
    http: requests.Session,
) -> str | None:
    validator = spec_validator()
    strategy = operation.as_strategy(
        generation_mode=mode,
        path_parameters=path_parameters,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exercise(case: Any) -> None:
        response = case.call(base_url=base_url, session=http, timeout=10)
        case.validate_response(response, checks=CHECKS)
        # schemathesis keeps every header as a list of values; the spec knows one each.
        headers = {
            name: values[0] if isinstance(values, list) else values
            for name, values in response.headers.items()
        }
        validator.assert_response(
            case.method, case.formatted_path, response.status_code, headers, response.content
        )

    try:
        exercise()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to break (no body, query or free path
        # parameter, since ids are pinned): there is no invalid request to send.
        if mode is GenerationMode.NEGATIVE:
            return None
        raise
    except (AssertionError, ConformanceError, schemathesis.errors.SchemathesisError) as exc:
        return f"{mode.value} {operation.label}: {exc}"
    except Exception as exc:  # a check failure group or a transport error: still a finding
        return f"{mode.value} {operation.label}: {type(exc).__name__}: {exc}"
    return None


def _run_fuzzer(base_url: str, targets: Targets) -> tuple[list[str], list[str]]:
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(normalized_spec())))
    operations = []
    for result in schema.get_all_operations():
        # An operation schemathesis cannot read comes as an Err: raise its own error, not an
        # AttributeError on Err.ok.
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    operations.sort(
        key=lambda op: (
            METHOD_ORDER.get(op.method.upper(), 9),
            op.definition.raw.get("operationId") == "delete-collection",
            op.path,
        )
    )
    failures: list[str] = []
    covered: list[str] = []
    with requests.Session() as http:
        for operation in operations:
            operation_id = operation.definition.raw.get("operationId", "")
            names = {p.name for p in operation.path_parameters}
            path_parameters = targets.path_parameters(operation_id, names)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failure = _fuzz_operation(operation, mode, path_parameters, base_url, http)
                if failure is not None:
                    failures.append(failure)
            covered.append(operation_id)
    return failures, covered


async def test_fuzzed_requests_get_documented_answers(sandbox: Any) -> None:
    targets = await _seed(sandbox.base_url, sandbox.site_id)
    failures, covered = await anyio.to_thread.run_sync(_run_fuzzer, sandbox.base_url, targets)
    assert set(covered) == set(SANDBOX_OPERATION_IDS)
    assert failures == [], "\n\n".join(failures)


# ---- the exhaustive wrong-type pass --------------------------------------------------------

#: One value of each JSON type (and an empty and a nested container): whatever a place expects,
#: most of these are wrong for it.
WRONG_VALUES: tuple[Any, ...] = ({}, {"nested": {}}, [], [{}], 0, -1.5, "", "text", True, None)
Path = tuple[str | int, ...]


def _alternatives(schema: Any) -> list[Any]:
    if isinstance(schema, dict) and "anyOf" in schema:
        return [alt for sub in schema["anyOf"] for alt in _alternatives(sub)]
    return [schema]


def _example(schema: Any, known: dict[str, str], name: str, *, every: bool) -> Any:
    """A value the schema accepts: the first alternative, enum entry or a plain one per type;
    strings named like an id get the seeded target's id, so the request reaches the handler."""
    schema = _alternatives(schema)[0]
    if not isinstance(schema, dict):
        return "text"
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        return _object_example(schema, known, every=every)
    if kind == "array":
        return [_example(schema.get("items", {}), known, name, every=every)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if schema.get("format") in ("date-time", "date-string"):
        return "2025-03-01T12:00:00.000Z"
    return known.get(name, "text")


def _object_example(schema: dict[str, Any], known: dict[str, str], *, every: bool) -> Any:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return {
        key: _example(sub, known, key, every=every)
        for key, sub in properties.items()
        if (every or key in required) and not (isinstance(sub, dict) and sub.get("readOnly"))
    }


def _places(value: Any, path: Path = ()) -> Iterator[Path]:
    """Every place in a JSON value, outermost first."""
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _places(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _places(sub, (*path, index))


def _replaced(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


def _mutated_bodies(schema: Any, known: dict[str, str]) -> Iterator[tuple[Path, Any]]:
    for alternative in _alternatives(schema):
        for every in (True, False):
            base = _example(alternative, known, "", every=every)
            for path in _places(base):
                for wrong in WRONG_VALUES:
                    yield path, _replaced(base, path, wrong)


def _operations_with_bodies() -> list[tuple[str, str, str, Any]]:
    spec = normalized_spec()
    found = []
    for template, methods in spec["paths"].items():
        for method, operation in methods.items():
            media = ((operation.get("requestBody") or {}).get("content") or {}).get(
                "application/json"
            )
            if media and "schema" in media:
                found.append((method.upper(), template, operation["operationId"], media["schema"]))
    found.sort(key=lambda entry: (METHOD_ORDER.get(entry[0], 9), entry[1]))
    return found


def _send_wrong_types(base_url: str, targets: Targets, locale_id: str) -> tuple[list[str], int]:
    validator = spec_validator()
    known = {
        "id": targets.item_id,
        "itemIds": targets.item_id,
        "collectionId": targets.collection_id,
        "cmsLocaleId": locale_id,
        "cmsLocaleIds": locale_id,
    }
    failures: list[str] = []
    sent = 0
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        for method, template, operation_id, schema in _operations_with_bodies():
            names = {part[1:-1] for part in template.split("/") if part.startswith("{")}
            path = template.format(**targets.path_parameters(operation_id, names))
            for place, body in _mutated_bodies(schema, known):
                response = http.request(method, base_url + path, json=body, timeout=10)
                sent += 1
                try:
                    assert response.status_code < 500, "a server error"
                    headers = dict(response.headers)
                    validator.assert_response(
                        method, path, response.status_code, headers, response.content
                    )
                except (AssertionError, ConformanceError) as problem:
                    where = "$" + "".join(f"[{step!r}]" for step in place)
                    failures.append(
                        f"{operation_id} {where} = {json.dumps(body)[:200]}: "
                        f"{response.status_code} {response.text[:200]}: {problem}"
                    )
    return failures, sent


async def test_wrongly_typed_body_values_are_4xx_never_5xx(sandbox: Any) -> None:
    targets = await _seed(sandbox.base_url, sandbox.site_id)
    locale_id = sandbox.core.sites[sandbox.site_id].cms_locale_ids[0]
    failures, sent = await anyio.to_thread.run_sync(
        _send_wrong_types, sandbox.base_url, targets, locale_id
    )
    covered = {operation_id for _, _, operation_id, _ in _operations_with_bodies()}
    assert {"create-field", "create-collection", "update-item", "update-items"} <= covered
    assert {"create-asset", "patch-asset"} <= covered
    assert sent > 1000  # every place of every body, each wrongly typed
    assert failures == [], f"{len(failures)} of {sent}:\n" + "\n\n".join(failures[:20])
