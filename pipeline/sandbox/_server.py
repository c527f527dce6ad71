"""The HTTP face of the sandbox: routing, auth, rate limits, faults, stats and inspection.

Everything under ``/v2`` passes, in order: bearer-token check (401), the token's fixed rate window
(429), the seeded fault draw (429 burst, 500/503, slow answer, commit-then-drop), then the core.
Every ``/v2`` answer carries ``X-RateLimit-Limit``/``X-RateLimit-Remaining``; every error, even an
unknown route or a bug, is Webflow's JSON error body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from flowport.pipeline.sandbox._assets import receive_upload, serve_asset
from flowport.pipeline.sandbox._config import FaultConfig, SandboxConfig
from flowport.pipeline.sandbox._core import FetchedFiles, SandboxCore, format_seconds
from flowport.pipeline.sandbox._errors import ApiError, bad_request
from flowport.pipeline.sandbox._journal import Journal
from flowport.pipeline.sandbox._remote import RemoteFiles

__all__ = ["Sandbox"]

logger = logging.getLogger("flowport.sandbox")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 0
    burst_left: int = 0


@dataclass(slots=True)
class _TokenTally:
    first: float
    last: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    #: (clock, requests so far) at the token's first and latest acknowledged item write: its
    #: steady state, setup (schema reads, collection and field creation) left out.
    first_item_write: tuple[float, int] | None = None
    last_item_write: tuple[float, int] | None = None

    def as_dict(self, index: int) -> dict[str, Any]:
        steady: dict[str, Any] | None = None
        if self.first_item_write is not None and self.last_item_write is not None:
            steady = {
                "firstSeconds": self.first_item_write[0],
                "lastSeconds": self.last_item_write[0],
                "requests": self.last_item_write[1] - self.first_item_write[1],
            }
        return {
            "index": index,
            "requests": self.requests,
            "rateLimited": self.rate_limited,
            "firstSeconds": self.first,
            "lastSeconds": self.last,
            "itemWrites": steady,
        }


def _is_item_write(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    return request.method in ("POST", "PATCH") and "/items" in route


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def _error(error: ApiError) -> web.Response:
    response = _json(error.body(), error.status)
    response.headers.update(error.headers)
    return response


async def _body(request: web.Request) -> object:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as problem:
        raise bad_request(f"Malformed JSON body: {problem}") from None


def _skip_invalid_files(request: web.Request) -> bool | None:
    raw = request.query.get("skipInvalidFiles")
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise bad_request("skipInvalidFiles must be true or false")


class Sandbox:
    """A running emulator of Webflow's CMS Data API v2 on a real local port."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.faults = self.config.faults
        self._random = random.Random(self.config.seed)
        self._windows: dict[str, _Window] = {}
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._totals: Counter[str] = Counter()
        #: Per token: requests, 429s, and the clock at its first and latest request (what a
        #: benchmark needs to tell each token's pace from the others').
        self._per_token: dict[str, _TokenTally] = {}
        self._runner: web.AppRunner | None = None
        self._core: SandboxCore | None = None
        self._port: int | None = None
        self._closed = False
        self._remote = RemoteFiles(self.config)

    # ---- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        journal = None
        if self.config.state_file is not None:
            journal = Journal(self.config.state_file, fsync=self.config.fsync)
        self._core = SandboxCore(self.config, journal)
        self._closed = False
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._core.close()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        self._core.assets.public_root = self.root_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self._remote.close()
        if self._core is not None and not self._closed:
            self._closed = True
            self._core.close()

    # ---- public surface -------------------------------------------------------------------

    @property
    def core(self) -> SandboxCore:
        if self._core is None:
            raise RuntimeError("the sandbox is not started")
        return self._core

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox is not started")
        return self._port

    @property
    def root_url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    @property
    def site_id(self) -> str:
        return self.core.site_id

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults

    def stats(self) -> dict[str, Any]:
        return {
            "totals": {
                "requests": self._totals["requests"],
                "rateLimited": self._totals["429"],
                "writes": self._totals["writes"],
                "faults": {
                    kind: self._totals[f"fault:{kind}"]
                    for kind in ("burst_429", "error", "slow", "commit_then_drop", "garbled")
                },
            },
            "endpoints": [
                {"method": method, "route": route, "status": status, "count": count}
                for (method, route, status), count in sorted(self._counts.items())
            ],
            # By the token's place in the configuration: never the token itself.
            "tokens": [
                tally.as_dict(index)
                for index, token in enumerate(self.config.tokens)
                if (tally := self._per_token.get(token)) is not None
            ],
        }

    def reset(self) -> None:
        self.core.reset()
        self._windows.clear()
        self._per_token.clear()
        self._counts.clear()
        self._totals.clear()

    # ---- the application ------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024**2)
        routes = [
            ("GET", "/v2/sites", self._list_sites),
            ("GET", "/v2/sites/{site_id}", self._get_site),
            ("POST", "/v2/sites/{site_id}/publish", self._publish_site),
            ("GET", "/v2/sites/{site_id}/collections", self._list_collections),
            ("POST", "/v2/sites/{site_id}/collections", self._create_collection),
            ("GET", "/v2/collections/{collection_id}", self._get_collection),
            ("DELETE", "/v2/collections/{collection_id}", self._delete_collection),
            ("POST", "/v2/collections/{collection_id}/fields", self._create_field),
            ("PATCH", "/v2/collections/{collection_id}/fields/{field_id}", self._update_field),
            ("DELETE", "/v2/collections/{collection_id}/fields/{field_id}", self._delete_field),
            # literal paths first: "live", "bulk" and "publish" are not item ids
            ("GET", "/v2/collections/{collection_id}/items/live", self._list_live),
            ("POST", "/v2/collections/{collection_id}/items/live", self._create_live),
            ("PATCH", "/v2/collections/{collection_id}/items/live", self._update_live),
            ("DELETE", "/v2/collections/{collection_id}/items/live", self._unpublish_items),
            ("POST", "/v2/collections/{collection_id}/items/bulk", self._create_bulk),
            ("POST", "/v2/collections/{collection_id}/items/publish", self._publish_items),
            ("GET", "/v2/collections/{collection_id}/items", self._list_items),
            ("POST", "/v2/collections/{collection_id}/items", self._create_items),
            ("PATCH", "/v2/collections/{collection_id}/items", self._update_items),
            ("DELETE", "/v2/collections/{collection_id}/items", self._delete_items),
            ("GET", "/v2/collections/{collection_id}/items/{item_id}/live", self._get_live),
            (
                "PATCH",
                "/v2/collections/{collection_id}/items/{item_id}/live",
                self._update_one_live,
            ),
            ("DELETE", "/v2/collections/{collection_id}/items/{item_id}/live", self._unpublish_one),
            ("GET", "/v2/collections/{collection_id}/items/{item_id}", self._get_item),
            ("PATCH", "/v2/collections/{collection_id}/items/{item_id}", self._update_item),
            ("DELETE", "/v2/collections/{collection_id}/items/{item_id}", self._delete_item),
            ("GET", "/v2/sites/{site_id}/assets", self._list_assets),
            ("POST", "/v2/sites/{site_id}/assets", self._create_asset),
            ("GET", "/v2/assets/{asset_id}", self._get_asset),
            ("PATCH", "/v2/assets/{asset_id}", self._update_asset),
            ("DELETE", "/v2/assets/{asset_id}", self._delete_asset),
            # S3-style storage for presigned uploads, and the hosted files (no token, no limits)
            ("POST", "/_sandbox/storage/{bucket}", self._storage_upload),
            ("GET", "/_sandbox/assets/{site_id}/{file_name}", self._serve_asset),
            ("GET", "/_sandbox/state", self._inspect_state),
            ("GET", "/_sandbox/stats", self._inspect_stats),
            ("GET", "/_sandbox/faults", self._inspect_faults),
            ("POST", "/_sandbox/faults", self._replace_faults),
            ("POST", "/_sandbox/reset", self._reset),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        return app

    # ---- middleware -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/v2" and not request.path.startswith("/v2/"):
            return await self._guarded(request, handler)
        self._totals["requests"] += 1
        token = _bearer(request)
        limit = self.config.rate_limit
        if token is None or token not in self.config.tokens:
            response: web.StreamResponse = _error(
                ApiError(401, "not_authorized", "Request is not authorized: missing or bad token")
            )
            response.headers["X-RateLimit-Limit"] = str(limit)
            response.headers["X-RateLimit-Remaining"] = str(limit)
            return self._count(request, response)
        tally = self._per_token.setdefault(token, _TokenTally(first=self.config.clock()))
        tally.requests += 1
        tally.last = self.config.clock()
        window = self._window(token)
        window.count += 1
        remaining = max(limit - window.count, 0)
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
        # Five draws per request whatever the configuration, so one seed gives one sequence.
        burst_draw, error_draw, kind_draw, slow_draw, drop_draw = (
            self._random.random() for _ in range(5)
        )
        faults = self.faults
        if window.count > limit:
            wait = window.start + self.config.window_seconds - self.config.clock()
            response = self._too_many(wait, "Rate limit exceeded for this token")
        elif window.burst_left > 0 or burst_draw < faults.burst_429_rate:
            response = self._burst_429(window, limit)
        elif error_draw < faults.error_rate and _method_chosen(faults.error_methods, request):
            response = self._error_fault(kind_draw)
        elif self._garbles(request):
            self._totals["fault:garbled"] += 1
            response = _garbled(faults.garbled_body)
        elif (missing := _missing_scope(request, self.config.scopes_of(token))) is not None:
            # Webflow's wording, from the spec's 403 example for a token without a scope.
            message = f"OAuthForbidden: You are missing the following scopes - {missing}"
            response = _error(ApiError(403, "missing_scopes", message))
        else:
            if slow_draw < faults.slow_rate:
                self._totals["fault:slow"] += 1
                await asyncio.sleep(faults.slow_seconds)
            response = await self._guarded(request, handler)
            if drop_draw < faults.commit_then_drop_rate and _method_chosen(
                faults.commit_then_drop_methods, request
            ):
                self._totals["fault:commit_then_drop"] += 1
                self._count(request, response)
                # The write is applied and journaled; the client only sees the connection close.
                if request.transport is not None:
                    request.transport.abort()
                return response
        tally.rate_limited += int(response.status == 429)
        if _is_item_write(request) and 200 <= response.status < 300:
            mark = (self.config.clock(), tally.requests)
            tally.first_item_write = tally.first_item_write or mark
            tally.last_item_write = mark
        response.headers.update(headers)
        return self._count(request, response)

    def _burst_429(self, window: _Window, limit: int) -> web.Response:
        faults = self.faults
        if window.burst_left == 0:
            window.burst_left = faults.burst_429_length
            self._totals["fault:burst_429"] += 1
        window.burst_left -= 1
        wait = faults.retry_after_seconds
        return self._too_many(
            self.config.window_seconds / limit if wait is None else wait,
            "Too many requests (burst)",
        )

    def _error_fault(self, kind_draw: float) -> web.Response:
        self._totals["fault:error"] += 1
        response = _error(_injected_error(kind_draw))
        wait = self.faults.retry_after_seconds
        if response.status == 503 and wait is not None:
            compressed = self.config.compressed_time
            response.headers["Retry-After"] = format_seconds(wait, compressed_time=compressed)
        return response

    def _garbles(self, request: web.Request) -> bool:
        faults = self.faults
        if faults.garbled_rate == 0.0:
            return False  # no draw: the five draws above stay one sequence per seed
        if not _method_chosen(faults.garbled_methods, request):
            return False
        return self._random.random() < faults.garbled_rate

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _error(error)
        except web.HTTPException as http_error:
            return _from_http_exception(http_error)
        except Exception:
            logger.exception("sandbox bug while serving %s %s", request.method, request.path)
            return _error(ApiError(500, "internal_error", "Sandbox internal error"))

    def _window(self, token: str) -> _Window:
        now = self.config.clock()
        window = self._windows.get(token)
        # A fixed window per token, started by its first request, as Webflow's "per minute".
        if window is None or now - window.start >= self.config.window_seconds:
            burst_left = window.burst_left if window is not None else 0
            window = self._windows[token] = _Window(start=now, burst_left=burst_left)
        return window

    def _too_many(self, wait: float, message: str) -> web.Response:
        self._totals["429"] += 1
        response = _error(ApiError(429, "too_many_requests", message))
        compressed = self.config.compressed_time
        response.headers["Retry-After"] = format_seconds(wait, compressed_time=compressed)
        return response

    def _count(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "<unknown route>"
        self._counts[(request.method, route, response.status)] += 1
        if request.method in _WRITE_METHODS and 200 <= response.status < 300:
            self._totals["writes"] += 1
        return response

    # ---- handlers: sites, collections, fields ---------------------------------------------

    async def _list_sites(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.list_sites())

    async def _get_site(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.get_site(request.match_info["site_id"]))

    async def _publish_site(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        try:
            answer = self.core.publish_site(request.match_info["site_id"], body)
        except ApiError as error:
            if error.status == 429:
                self._totals["429"] += 1
            raise
        return _json(answer, 202)

    async def _list_collections(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.list_collections(request.match_info["site_id"]))

    async def _create_collection(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _json(self.core.create_collection(request.match_info["site_id"], body))

    async def _get_collection(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.get_collection(request.match_info["collection_id"]))

    async def _delete_collection(self, request: web.Request) -> web.StreamResponse:
        self.core.delete_collection(request.match_info["collection_id"])
        return web.Response(status=204)

    async def _create_field(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _json(self.core.create_field(request.match_info["collection_id"], body))

    async def _update_field(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        info = request.match_info
        return _json(self.core.update_field(info["collection_id"], info["field_id"], body))

    async def _delete_field(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        self.core.delete_field(info["collection_id"], info["field_id"])
        return web.Response(status=204)

    # ---- handlers: items ------------------------------------------------------------------

    async def _list_items(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["collection_id"]
        return _json(self.core.list_items(cid, request.query))

    async def _list_live(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["collection_id"]
        return _json(self.core.list_items(cid, request.query, live=True))

    async def _get_item(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        locale = request.query.get("cmsLocaleId")
        return _json(self.core.get_item(info["collection_id"], info["item_id"], locale))

    async def _get_live(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        locale = request.query.get("cmsLocaleId")
        item = self.core.get_item(info["collection_id"], info["item_id"], locale, live=True)
        return _json(item)

    async def _fetch_files(self, collection_id: str, body: object) -> FetchedFiles:
        """Webflow fetches the files an item's Image/File values name before it writes the item;
        so does the sandbox, on the loop, before the (synchronous) core sees the request."""
        return await self._remote.fetch_all(self.core.wanted_files(collection_id, body))

    async def _create_items(self, request: web.Request, *, live: bool = False) -> web.Response:
        skip = _skip_invalid_files(request)
        body = await _body(request)
        cid = request.match_info["collection_id"]
        files = await self._fetch_files(cid, body)
        answer = self.core.create_items(cid, body, live=live, skip_invalid_files=skip, files=files)
        return _json(answer, 202)

    async def _create_live(self, request: web.Request) -> web.StreamResponse:
        return await self._create_items(request, live=True)

    async def _create_bulk(self, request: web.Request) -> web.StreamResponse:
        skip = _skip_invalid_files(request)
        body = await _body(request)
        cid = request.match_info["collection_id"]
        files = await self._fetch_files(cid, body)
        answer = self.core.create_items_bulk(cid, body, skip_invalid_files=skip, files=files)
        return _json(answer, 202)

    async def _update_items(self, request: web.Request, *, live: bool = False) -> web.Response:
        skip = _skip_invalid_files(request)
        body = await _body(request)
        cid = request.match_info["collection_id"]
        files = await self._fetch_files(cid, body)
        answer = self.core.update_items(cid, body, live=live, skip_invalid_files=skip, files=files)
        return _json(answer)

    async def _update_live(self, request: web.Request) -> web.StreamResponse:
        return await self._update_items(request, live=True)

    async def _update_item(self, request: web.Request, *, live: bool = False) -> web.Response:
        skip = _skip_invalid_files(request)
        body = await _body(request)
        info = request.match_info
        files = await self._fetch_files(info["collection_id"], body)
        answer = self.core.update_item(
            info["collection_id"], info["item_id"], body, live=live, skip_invalid_files=skip,
            files=files,
        )  # fmt: skip
        return _json(answer)

    async def _update_one_live(self, request: web.Request) -> web.StreamResponse:
        return await self._update_item(request, live=True)

    async def _delete_item(self, request: web.Request, *, live: bool = False) -> web.Response:
        info = request.match_info
        locale = request.query.get("cmsLocaleId")
        self.core.delete_item(info["collection_id"], info["item_id"], locale, live=live)
        return web.Response(status=204)

    async def _unpublish_one(self, request: web.Request) -> web.StreamResponse:
        return await self._delete_item(request, live=True)

    async def _delete_items(self, request: web.Request, *, live: bool = False) -> web.Response:
        body = await _body(request)
        self.core.delete_items(request.match_info["collection_id"], body, live=live)
        return web.Response(status=204)

    async def _unpublish_items(self, request: web.Request) -> web.StreamResponse:
        return await self._delete_items(request, live=True)

    async def _publish_items(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        collection_id = request.match_info["collection_id"]
        refused = self.faults.publish_refused_slugs
        return _json(self.core.publish_items(collection_id, body, refused_slugs=refused), 202)

    # ---- handlers: assets (the rules live in _assets.py) -----------------------------------

    async def _list_assets(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.assets.list_assets(request.match_info["site_id"], request.query))

    async def _create_asset(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _json(self.core.assets.create_asset(request.match_info["site_id"], body))

    async def _get_asset(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.assets.get_asset(request.match_info["asset_id"]))

    async def _update_asset(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        return _json(self.core.assets.update_asset(request.match_info["asset_id"], body))

    async def _delete_asset(self, request: web.Request) -> web.StreamResponse:
        self.core.assets.delete_asset(request.match_info["asset_id"])
        return web.Response(status=204)

    async def _storage_upload(self, request: web.Request) -> web.StreamResponse:
        return await receive_upload(request, self.core.assets)

    async def _serve_asset(self, request: web.Request) -> web.StreamResponse:
        return await serve_asset(request, self.core.assets)

    # ---- inspection (outside /v2: no auth, no rate limit, no faults) -----------------------

    async def _inspect_state(self, request: web.Request) -> web.StreamResponse:
        return _json(self.core.dump_state())

    async def _inspect_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(self.stats())

    async def _inspect_faults(self, request: web.Request) -> web.StreamResponse:
        return _json(self.faults.model_dump())

    async def _replace_faults(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        try:
            faults = FaultConfig.model_validate(body if body is not None else {})
        except ValueError as problem:
            raise ApiError(
                400, "validation_error", "Invalid fault configuration", [str(problem)]
            ) from None
        self.set_faults(faults)
        return _json(faults.model_dump())

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return _json({"siteId": self.site_id})


def _injected_error(kind_draw: float) -> ApiError:
    if kind_draw < 0.5:
        return ApiError(500, "internal_error", "We had a problem with our server")
    return ApiError(503, "service_unavailable", "Service temporarily unavailable")


def _missing_scope(request: web.Request, scopes: frozenset[str]) -> str | None:
    """The scope the route needs that the token lacks, by the spec's ``security`` of each
    operation: ``sites:*`` for the site itself, ``cms:*`` for collections, fields and items
    (item publishing too), ``assets:*`` for assets; read for GET, write otherwise."""
    resource = request.match_info.route.resource
    if resource is None:
        return None  # an unknown route is a 404 whatever the token
    route = resource.canonical
    if "/assets" in route or "/asset_folders" in route:
        area = "assets"  # /sites/{id}/assets too: checked before the site's own routes
    elif route.startswith("/v2/sites") and "/collections" not in route:
        area = "sites"
    else:
        area = "cms"
    needed = f"{area}:{'read' if request.method in ('GET', 'HEAD') else 'write'}"
    return None if needed in scopes else needed


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _from_http_exception(http_error: web.HTTPException) -> web.Response:
    status = http_error.status
    if status == 404:
        error = ApiError(404, "resource_not_found", "Requested resource not found: no such route")
    elif status == 405:
        error = ApiError(405, "bad_request", "Method not allowed for this route")
    elif status == 413:
        error = ApiError(413, "bad_request", "Request body too large")
    else:
        error = ApiError(status, "bad_request", http_error.reason or "Bad request")
    response = _error(error)
    if "Allow" in http_error.headers:
        response.headers["Allow"] = http_error.headers["Allow"]
    return response


_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Down for maintenance</title></head>"
    b"<body><h1>We'll be back soon</h1></body></html>"
)


def _method_chosen(methods: tuple[str, ...], request: web.Request) -> bool:
    """Whether a fault limited to ``methods`` (every method when empty) may hit the request."""
    return not methods or request.method in methods


def _garbled(kind: str) -> web.Response:
    """A 200 that is not the API's JSON: what a proxy answers while the API is away."""
    if kind == "html":
        return web.Response(status=200, body=_MAINTENANCE_PAGE, content_type="text/html")
    return web.Response(
        status=200, body=b'{"status": "ok", "data": null}', content_type="application/json"
    )
