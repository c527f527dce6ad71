"""Judge HTTP answers against Webflow's own OpenAPI description of Data API v2.

The contract is ``../shared/webflow-openapi/v2.yml`` (OpenAPI 3.1, generated for Fern). It is read
once per process and its schemas are translated into plain JSON Schema 2020-12 before use. The
translation is deliberate, rule by rule, because the file is not valid JSON Schema as written:

* ``nullable: true`` (an OpenAPI 3.0 keyword that 3.1 dropped) becomes a ``null`` type union.
* ``items`` written as a list (``details`` in every error body lists a string and an object)
  means "each element is one of these", so it becomes ``items: {anyOf: [...]}``; read literally in
  2020-12 it would be an invalid schema, in older drafts a tuple.
* ``example``/``examples`` are dropped from schemas (annotations only); ``readOnly`` is kept
  (an annotation for responses); vendor ``x-`` keys are ignored by JSON Schema anyway.
* ``format`` is checked for the formats the CMS answers actually carry: ``objectid`` (24 hex
  digits, or 32 for field ids), ``date-time`` and Fern's ``date-string`` (ISO-8601 timestamps),
  ``email`` and ``uri``.
  Other formats (``hash``, ``mime-type``...) are annotations.
* Nullability the spec shows but does not declare: a property that the spec's own response
  examples of the operations the sandbox serves give as ``null`` (``externalReference`` in
  every error example, ``lastPublished`` of a never-published item, ``helpText``,
  ``validations``...) is treated as nullable in those operations' response schemas.
  :func:`null_in_examples` computes them from the file; none is typed in.
* ``oneOf`` becomes ``anyOf``: Fern writes untagged unions as ``oneOf`` whose branches overlap
  (no discriminator, all-optional properties), so read literally the spec's own examples match
  "more than one" branch and fail (POST ``/items/publish`` with ``itemIds``, for one).
* ``required`` names that the same schema object does not declare under ``properties`` are
  dropped: Fern copies a single item's ``required`` list next to ``oneOf``/``items`` wrappers
  (PATCH ``/items`` and ``/items/live``), which would reject every example the spec gives there.
* Errata (:data:`ERRATA`): responses whose schema rejects the spec's own examples. Each entry
  says why and what is accepted; a test proves each erratum is still needed, so a corrected spec
  makes it fail rather than silently widening the contract.

Statuses: an answer must use a status the operation documents, exactly (``404``), by range
(``4XX``) or as ``default``. The one exception is a server failure (:data:`EDGE_STATUSES`, any
5xx): any operation can fail on the server or at the load balancer in front of it, and the spec
lists 500 for most operations but not all (POST ``/sites/{site_id}/publish`` has none, nor 502,
503 or 504 anywhere), so an undocumented 5xx is accepted; its body, if any, must still be
Webflow's error body. Whether a 5xx was *deserved* is the fuzzer's ``not_a_server_error`` check.

Every answer, success or error, must carry ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` as
non-negative integers with remaining <= limit: the spec documents them on 429 and its 429 text says
"we include [them] on API responses".
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

__all__ = [
    "ASSET_OPERATION_IDS",
    "CMS_OPERATION_IDS",
    "EDGE_STATUSES",
    "ERRATA",
    "SANDBOX_OPERATION_IDS",
    "SPEC_PATH",
    "ConformanceError",
    "Operation",
    "SpecValidator",
    "Violation",
    "error_body_schema",
    "load_spec",
    "normalized_spec",
    "null_in_examples",
    "require_spec",
    "spec_validator",
    "translate_schema",
]

SPEC_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "webflow-openapi" / "v2.yml"
SERVER_BASE_PATH = "/v2"

#: The operations the sandbox serves: sites, collections, fields and CMS items.
CMS_OPERATION_IDS: frozenset[str] = frozenset(
    {
        "list-sites",
        "get-site",
        "site-publish",
        "list-collections",
        "create-collection",
        "collection-details",
        "delete-collection",
        "create-field",
        "update-field",
        "delete-field",
        "list-collection-items",
        "create-item",
        "update-items",
        "delete-items",
        "list-collection-items-live",
        "create-item-live",
        "update-items-live",
        "delete-items-live",
        "create-items",
        "Get-Item",
        "update-item",
        "delete-item",
        "get-item-live",
        "update-item-live",
        "delete-item-live",
        "publish-item",
    }
)

#: The Assets API operations the sandbox serves (asset folders are not emulated).
ASSET_OPERATION_IDS: frozenset[str] = frozenset(
    {"list-assets", "create-asset", "get-asset", "patch-asset", "delete-asset"}
)
#: Every operation the sandbox serves: what the fuzzer and the nullability reading cover.
SANDBOX_OPERATION_IDS: frozenset[str] = CMS_OPERATION_IDS | ASSET_OPERATION_IDS

EDGE_STATUSES: frozenset[int] = frozenset(range(500, 600))
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining")


def require_spec() -> Path:
    """The spec's path; skips the calling test when it is absent, fails instead under CI=true."""
    if SPEC_PATH.is_file():
        return SPEC_PATH
    reason = (
        f"Webflow's OpenAPI spec is not at {SPEC_PATH.resolve()} "
        "(../shared/webflow-openapi/v2.yml relative to the repository)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true forbids skipping", pytrace=False)
    pytest.skip(reason)


@functools.cache
def load_spec() -> dict[str, Any]:
    """The spec as written (3.4 MB of YAML: parsed once per process, with libyaml when present)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with require_spec().open("rb") as handle:
        spec = yaml.load(handle, Loader=loader)
    if not isinstance(spec, dict) or "paths" not in spec:
        raise ValueError(f"{SPEC_PATH} is not an OpenAPI document")
    return spec


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.detail}"


class ConformanceError(AssertionError):
    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        body: bytes,
        violations: list[Violation],
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.violations = violations
        excerpt = body[:600].decode("utf-8", "replace")
        lines = "\n  ".join(str(v) for v in violations)
        super().__init__(
            f"{method.upper()} {path} -> {status} breaks the spec:\n  {lines}\n  body: {excerpt}"
        )


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    template: str
    operation_id: str
    definition: Mapping[str, Any]
    pattern: re.Pattern[str]
    literal_segments: int

    def response_key(self, status: int) -> str | None:
        responses = self.definition.get("responses", {})
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                return key
        return None


# ---- schema translation -------------------------------------------------------------------

_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_KEYS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_DROPPED = ("example", "examples", "nullable", "discriminator", "xml", "externalDocs")


def _make_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"] if kind != "null" else kind
    elif isinstance(kind, list):
        if "null" not in kind:
            schema["type"] = [*kind, "null"]
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    if "const" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def translate_schema(
    node: Any,
    nullable_names: frozenset[str] = frozenset(),
    *,
    request: bool = False,
    keep_undeclared_required: bool = False,
) -> Any:
    """One spec schema as JSON Schema 2020-12, by the rules in this module's docstring."""
    return _translate(
        node, nullable_names, request=request, keep_undeclared=keep_undeclared_required
    )


def _translate(
    node: Any,
    nullable_names: frozenset[str],
    *,
    request: bool = False,
    keep_undeclared: bool = False,
) -> Any:
    if isinstance(node, list):
        return [
            _translate(entry, nullable_names, request=request, keep_undeclared=keep_undeclared)
            for entry in node
        ]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-"):
            continue
        if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            translated = {}
            for name, sub in value.items():
                sub_schema = _translate(
                    sub, nullable_names, request=request, keep_undeclared=keep_undeclared
                )
                if key == "properties" and name in nullable_names and isinstance(sub_schema, dict):
                    sub_schema = _make_nullable(sub_schema)
                translated[name] = sub_schema
            out[key] = translated
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            translated_list = [
                _translate(sub, nullable_names, request=request, keep_undeclared=keep_undeclared)
                for sub in value
            ]
            out["anyOf" if key == "oneOf" else key] = translated_list
        elif key == "items" and isinstance(value, list):
            out[key] = {
                "anyOf": [
                    _translate(
                        sub, nullable_names, request=request, keep_undeclared=keep_undeclared
                    )
                    for sub in value
                ]
            }
        elif key in _SCHEMA_KEYS and isinstance(value, dict):
            out[key] = _translate(
                value, nullable_names, request=request, keep_undeclared=keep_undeclared
            )
        else:
            out[key] = copy.deepcopy(value)
    declared = out.get("properties")
    if isinstance(out.get("required"), list):
        names = declared if isinstance(declared, dict) else {}
        # OpenAPI: a readOnly property is required in responses only; a client never sends it.
        kept = [
            name
            for name in out["required"]
            if (name in names or keep_undeclared)
            and not (request and names.get(name, {}).get("readOnly") is True)
        ]
        if kept:
            out["required"] = kept
        else:
            del out["required"]
    if node.get("nullable") is True:
        return _make_nullable(out)
    return out


def _example_values(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "example":
                yield value
            elif key == "examples" and isinstance(value, dict):
                for named in value.values():
                    yield named.get("value") if isinstance(named, dict) else named
            elif key == "examples" and isinstance(value, list):
                yield from value
            else:
                yield from _example_values(value)
    elif isinstance(node, list):
        for entry in node:
            yield from _example_values(entry)


def _null_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            if sub is None:
                yield key
            else:
                yield from _null_keys(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _null_keys(sub)


def _iter_operations(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for template, item in spec["paths"].items():
        for method in HTTP_METHODS:
            definition = item.get(method)
            if isinstance(definition, dict):
                yield method, template, definition


@functools.cache
def _null_in_examples() -> frozenset[str]:
    names: set[str] = set()
    for _method, _template, definition in _iter_operations(load_spec()):
        if definition.get("operationId") in SANDBOX_OPERATION_IDS:
            for example in _example_values(definition.get("responses", {})):
                names.update(_null_keys(example))
    return frozenset(names)


def null_in_examples() -> frozenset[str]:
    """Property names the spec's own CMS response examples give as null (read on first use)."""
    return _null_in_examples()


# ---- errata -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erratum:
    reason: str
    fix: Callable[[dict[str, Any]], dict[str, Any]]


def _item_list_alternative(schema: dict[str, Any], item_schema: dict[str, Any]) -> dict[str, Any]:
    item_list = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": item_schema}},
    }
    return {"anyOf": [schema, item_list]}


def _bulk_create_fix(schema: dict[str, Any]) -> dict[str, Any]:
    single = copy.deepcopy(schema)
    single_item = copy.deepcopy(schema)
    single_item.get("properties", {}).pop("cmsLocaleIds", None)
    single_item["properties"]["cmsLocaleId"] = {"type": "string"}
    single_item["required"] = [r for r in single_item.get("required", []) if r != "cmsLocaleIds"]
    return _item_list_alternative(single, single_item)


def _single_or_list_fix(schema: dict[str, Any]) -> dict[str, Any]:
    return _item_list_alternative(schema, copy.deepcopy(schema))


def _require_item_list(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": "object", "required": ["items"]}


def _bulk_update_fix(schema: dict[str, Any]) -> dict[str, Any]:
    single, item_list = schema["anyOf"]
    return {"anyOf": [single, _require_item_list(item_list)]}


#: (method, path template, status) -> what the spec's schema gets wrong and what is accepted.
ERRATA: dict[tuple[str, str, str], Erratum] = {
    ("post", "/collections/{collection_id}/items", "202"): Erratum(
        reason=(
            "the request may be `{items: [...]}` (schema 'Multiple Items') and the spec's "
            "MultipleItems example answers `{items: [...]}`, but the schema only describes one "
            "item; `{items: [<full Collection Item>]}` is accepted as well"
        ),
        fix=_single_or_list_fix,
    ),
    ("patch", "/collections/{collection_id}/items", "200"): Erratum(
        reason=(
            "a `required` list for one item sits next to `oneOf: [item, item list]`, so the list "
            "answer of every example (LocalizedItems...) fails it; once that stray list is "
            "dropped the list branch requires nothing and would accept `{}`, so `items` is "
            "required in that branch"
        ),
        fix=_bulk_update_fix,
    ),
    ("patch", "/collections/{collection_id}/items/live", "200"): Erratum(
        reason=(
            "the schema declares only `items` yet requires one item's fields at the top level, "
            "which every example (LocalizedItems...) fails; `{items: [...]}` is required instead"
        ),
        fix=_require_item_list,
    ),
    ("post", "/collections/{collection_id}/items/live", "202"): Erratum(
        reason=(
            "as for POST /items: the request schema 'Multiple Live Items' takes `{items: [...]}` "
            "and one item's schema cannot answer it; `{items: [<full Collection Item>]}` is "
            "accepted as well"
        ),
        fix=_single_or_list_fix,
    ),
    ("post", "/collections/{collection_id}/items/bulk", "202"): Erratum(
        reason=(
            "the schema describes one item with `cmsLocaleIds`, but both of the spec's examples "
            "(SingleItemMultipleLocales, MultipleItemsMultipleLocales) answer `{items: [...]}` "
            "with one entry per created item and locale; either shape is accepted"
        ),
        fix=_bulk_create_fix,
    ),
}


# ---- the validator ------------------------------------------------------------------------


def _is_iso_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or len(value) == 10


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path))


# Webflow ids are MongoDB ObjectIds (24 hex digits), except field ids, which are 32 hex digits
# (the spec's own field and collection examples use both lengths).
_OBJECT_ID = r"[0-9a-f]{24}|[0-9a-f]{32}"


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("objectid")(
        lambda v: not isinstance(v, str) or re.fullmatch(_OBJECT_ID, v) is not None
    )
    checker.checks("date-time")(_is_iso_timestamp)
    checker.checks("date-string")(_is_iso_timestamp)
    checker.checks("email")(lambda v: not isinstance(v, str) or "@" in v)
    checker.checks("uri")(_is_uri)
    return checker


def _compile_template(template: str) -> tuple[re.Pattern[str], int]:
    segments = template.strip("/").split("/")
    parts = []
    literal = 0
    for segment in segments:
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(r"[^/]+")
        else:
            parts.append(re.escape(segment))
            literal += 1
    return re.compile("^/" + "/".join(parts) + "/?$"), literal


class SpecValidator:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._spec = spec
        self._operations: list[Operation] = []
        for method, template, definition in _iter_operations(spec):
            pattern, literal = _compile_template(template)
            self._operations.append(
                Operation(
                    method=method,
                    template=template,
                    operation_id=str(definition.get("operationId", "")),
                    definition=definition,
                    pattern=pattern,
                    literal_segments=literal,
                )
            )
        self._validators: dict[tuple[str, str, str, str], jsonschema.protocols.Validator] = {}
        self._format_checker = _format_checker()

    @staticmethod
    def api_path(url_or_path: str) -> str:
        path = urlsplit(url_or_path).path or "/"
        if path == SERVER_BASE_PATH or path.startswith(SERVER_BASE_PATH + "/"):
            path = path[len(SERVER_BASE_PATH) :] or "/"
        return path

    def operations(self, operation_ids: Iterable[str] | None = None) -> list[Operation]:
        wanted = None if operation_ids is None else set(operation_ids)
        return [op for op in self._operations if wanted is None or op.operation_id in wanted]

    def find_operation(self, method: str, url_or_path: str) -> Operation | None:
        path = self.api_path(url_or_path)
        method = method.lower()
        candidates = [
            op for op in self._operations if op.method == method and op.pattern.match(path)
        ]
        if not candidates:
            return None
        # "/items/live" must win over "/items/{item_id}": the most literal template is the route.
        return max(candidates, key=lambda op: op.literal_segments)

    def path_is_known(self, url_or_path: str) -> bool:
        path = self.api_path(url_or_path)
        return any(op.pattern.match(path) for op in self._operations)

    def schema_validator(
        self, operation: Operation, response_key: str, media_type: str = "application/json"
    ) -> jsonschema.protocols.Validator | None:
        cache_key = (operation.method, operation.template, response_key, media_type)
        if cache_key in self._validators:
            return self._validators[cache_key]
        response = operation.definition["responses"][response_key]
        content = response.get("content") or {}
        media = content.get(media_type)
        if media is None or "schema" not in media:
            return None
        nullable = _null_in_examples() if operation.operation_id in SANDBOX_OPERATION_IDS else None
        schema = _translate(media["schema"], nullable or frozenset())
        erratum = ERRATA.get((operation.method, operation.template, response_key))
        if erratum is not None:
            schema = erratum.fix(schema)
        validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        validator_class.check_schema(schema)
        validator = validator_class(schema, format_checker=self._format_checker)
        self._validators[cache_key] = validator
        return validator

    def request_violations(self, method: str, url_or_path: str, body: object) -> list[Violation]:
        """Checks a request body this suite is about to send, so a 400 is never our own fault."""
        operation = self.find_operation(method, url_or_path)
        if operation is None:
            return [Violation("operation", f"no operation for {method.upper()} {url_or_path}")]
        request_body = operation.definition.get("requestBody") or {}
        media = (request_body.get("content") or {}).get("application/json")
        if media is None or "schema" not in media:
            return []
        schema = _translate(media["schema"], frozenset(), request=True)
        validator = jsonschema.Draft202012Validator(schema, format_checker=self._format_checker)
        return [
            Violation("request-body", f"{_where(error)}: {error.message}")
            for error in validator.iter_errors(body)
        ]

    def response_violations(
        self,
        method: str,
        url_or_path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Violation]:
        violations = _rate_header_violations(headers)
        operation = self.find_operation(method, url_or_path)
        if operation is None:
            violations.extend(self._unrouted_violations(method, url_or_path, status, body))
            return violations
        response_key = operation.response_key(status)
        if response_key is None:
            if status in EDGE_STATUSES:
                violations.extend(_error_body_violations(headers, body, required=False))
                return violations
            documented = ", ".join(operation.definition.get("responses", {}))
            violations.append(
                Violation(
                    "status",
                    f"{status} is not documented for {operation.operation_id} "
                    f"({operation.method.upper()} {operation.template}); documented: {documented}",
                )
            )
            if status >= 400:
                violations.extend(_error_body_violations(headers, body, required=True))
            return violations
        response = operation.definition["responses"][response_key]
        content = response.get("content") or {}
        if not content:
            if body.strip():
                violations.append(
                    Violation("content", f"{response_key} documents no body, got {body[:80]!r}")
                )
            return violations
        content_type = _header(headers, "Content-Type") or ""
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in content:
            violations.append(
                Violation(
                    "content-type",
                    f"Content-Type {content_type!r} is not one of {sorted(content)}",
                )
            )
            return violations
        validator = self.schema_validator(operation, response_key, media_type)
        if validator is None:
            return violations
        try:
            document = json.loads(body)
        except ValueError as exc:
            violations.append(Violation("json", f"body is not JSON: {exc}"))
            return violations
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
            violations.append(
                Violation(f"schema {response_key}", f"{_where(error)}: {_short(error.message)}")
            )
        return violations

    def _unrouted_violations(
        self, method: str, url_or_path: str, status: int, body: bytes
    ) -> list[Violation]:
        # A path the spec does not know, or a method it does not list there, can only be refused.
        known_path = self.path_is_known(url_or_path)
        allowed = {404, 405} if known_path else {404}
        violations = []
        if status not in allowed:
            violations.append(
                Violation(
                    "operation",
                    f"no operation for {method.upper()} {self.api_path(url_or_path)}, "
                    f"yet the answer is {status} instead of {sorted(allowed)}",
                )
            )
        violations.extend(
            _error_body_violations({"Content-Type": "application/json"}, body, required=False)
        )
        return violations

    def assert_response(
        self,
        method: str,
        url_or_path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        violations = self.response_violations(method, url_or_path, status, headers, body)
        if violations:
            raise ConformanceError(method, self.api_path(url_or_path), status, body, violations)


def _where(error: jsonschema.ValidationError) -> str:
    return "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.path)


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[:limit] + "..."


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _rate_header_violations(headers: Mapping[str, str]) -> list[Violation]:
    values: dict[str, int] = {}
    violations = []
    for name in RATE_HEADERS:
        raw = _header(headers, name)
        if raw is None:
            violations.append(Violation("rate-headers", f"{name} is missing"))
            continue
        try:
            value = int(raw.strip())
        except ValueError:
            violations.append(Violation("rate-headers", f"{name}={raw!r} is not an integer"))
            continue
        if value < 0:
            violations.append(Violation("rate-headers", f"{name}={value} is negative"))
        values[name] = value
    if len(values) == 2 and values["X-RateLimit-Remaining"] > values["X-RateLimit-Limit"]:
        violations.append(
            Violation(
                "rate-headers",
                f"X-RateLimit-Remaining={values['X-RateLimit-Remaining']} exceeds "
                f"X-RateLimit-Limit={values['X-RateLimit-Limit']}",
            )
        )
    return violations


def error_body_schema() -> dict[str, Any]:
    """Webflow's one error body, as the spec gives it for GET /sites/{site_id} 404."""
    raw = load_spec()["paths"]["/sites/{site_id}"]["get"]["responses"]["404"]
    schema: dict[str, Any] = _translate(
        raw["content"]["application/json"]["schema"], _null_in_examples()
    )
    # The spec marks nothing required, yet every error example carries a code and a message and
    # clients (flowport's classify, the SDK's Error model) act on them: without them it is no error.
    schema["required"] = ["code", "message"]
    return schema


@functools.cache
def _error_body_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(error_body_schema())


def _error_body_violations(
    headers: Mapping[str, str], body: bytes, *, required: bool
) -> list[Violation]:
    if not body.strip():
        return [Violation("error-body", "empty body")] if required else []
    try:
        document = json.loads(body)
    except ValueError:
        return [Violation("error-body", f"error body is not JSON: {body[:80]!r}")]
    return [
        Violation("error-body", f"{_where(error)}: {_short(error.message)}")
        for error in _error_body_validator().iter_errors(document)
    ]


@functools.cache
def spec_validator() -> SpecValidator:
    return SpecValidator(load_spec())


@functools.cache
def normalized_spec() -> dict[str, Any]:
    """The spec restricted to the sandbox's operations, its schemas translated as described above.

    This is what the fuzzer reads, so the fuzzer and :class:`SpecValidator` share one reading.
    """
    spec = load_spec()
    nullable = _null_in_examples()
    paths: dict[str, Any] = {}
    for method, template, definition in _iter_operations(spec):
        if definition.get("operationId") not in SANDBOX_OPERATION_IDS:
            continue
        operation = copy.deepcopy(dict(definition))
        for status, response in operation.get("responses", {}).items():
            for media in (response.get("content") or {}).values():
                if "schema" in media:
                    schema = _translate(media["schema"], nullable)
                    erratum = ERRATA.get((method, template, str(status)))
                    media["schema"] = erratum.fix(schema) if erratum else schema
                media.pop("example", None)
                media.pop("examples", None)
        body = operation.get("requestBody")
        if body:
            for media in (body.get("content") or {}).values():
                if "schema" in media:
                    media["schema"] = _translate(media["schema"], frozenset(), request=True)
        for parameter in operation.get("parameters", []):
            if "schema" in parameter:
                parameter["schema"] = _translate(parameter["schema"], frozenset())
        paths.setdefault(template, {})[method] = operation
    return {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "servers": spec["servers"],
        "security": spec.get("security", []),
        "components": spec.get("components", {}),
        "paths": paths,
    }
