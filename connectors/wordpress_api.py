"""One client for a WordPress site's REST API: the connector reads through it, and so does
``flowport init wordpress URL`` when it learns a site.

- Discovery: ``/wp-json/``, or ``/?rest_route=/`` when pretty permalinks are off (found on a
  404, or a 2xx that is not JSON), once per client; :meth:`WordPressApi.discover` returns the
  index so a caller that needs it (the site's name, home, routes) asks once.
- Once per site per run: inside :func:`one_discovery_per_site` (a run, a plan, ``validate``,
  ``init``), every client of one site and login shares what the site told the first one: the
  index and route style, that the application password was accepted, and the ``types`` and
  ``taxonomies`` listings. A run opens each collection's source several times (the check before
  the first write, the link map, the read) and each read opens a client: without the scope, a
  five-collection WordPress job asked for the index 20 times and ``users/me`` 15 times.
- Auth: an application password (Basic auth), named by env vars, kept out of every repr, log
  line and message. WordPress 6.1 answers a *wrong* one as if no credentials were sent, so
  :meth:`WordPressApi.check_credentials` asks ``users/me``.
- Paging: :meth:`WordPressApi.page` reads ``X-WP-Total`` and ``X-WP-TotalPages``; a page past the
  end (the site shrank during the read) is an empty page.
- Errors: WordPress's ``{code, message}`` body is in the message; a 404 is :class:`NoApiHere`
  (the route is not there), any other refusal a :class:`WordPressRefused`.
- Retries: 5xx, 408, 425, 429 and timeouts, with exponential backoff and jitter, honouring
  Retry-After. A wait is at most 30 s (so a read waits at most ``max_attempts - 1`` times that);
  a Retry-After longer than that stops the read at once, naming it, instead of being cut short
  and asked again; a wait of 5 s or more is logged with how long and why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import anyio

from flowport.base.errors import ConfigError, SourceError, parse_retry_after
from flowport.connectors.wordpress_common import decode_text

__all__ = [
    "ApiStyle",
    "ApplicationPassword",
    "NoApiHere",
    "Page",
    "WordPressApi",
    "WordPressRefused",
    "application_password_from_env",
    "one_discovery_per_site",
]

log = logging.getLogger("flowport.connectors.wordpress_api")

ApiStyle = Literal["auto", "pretty", "query"]
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BACKOFF_SECONDS = 30.0
#: A wait this long or longer is logged; shorter ones are the ordinary pace of retries.
_ANNOUNCE_WAITS_FROM_SECONDS = 5.0


class ApplicationPassword:
    """An application password, kept out of every repr, log line and message."""

    __slots__ = ("_header", "source", "user")

    def __init__(self, user: str, password: str, *, source: str) -> None:
        self.user = user
        self.source = source
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._header = f"Basic {token}"

    def header(self) -> str:
        return self._header

    def __repr__(self) -> str:
        return f"ApplicationPassword(user={self.user!r}, password=<hidden>)"


def application_password_from_env(
    user_env: str | None,
    password_env: str | None,
    env: Mapping[str, str],
    *,
    key: str | None = None,
) -> ApplicationPassword | None:
    """The application password two env vars hold, None when neither is named.

    ``key`` is the job file or command-line key errors name; without it, the one of
    ``user_env`` and ``password_env`` at fault.
    """
    if (user_env is None) != (password_env is None):
        raise ConfigError(
            "the user and password env vars go together",
            key=key or "user_env",
            fix="name both (an application password), or neither",
        )
    if user_env is None or password_env is None:
        return None
    user, password = env.get(user_env), env.get(password_env)
    if not user or not password:
        missing = user_env if not user else password_env
        raise ConfigError(
            f"environment variable {missing} is not set",
            key=key or ("user_env" if not user else "password_env"),
            fix=f"export {missing}=... (the password is an application password)",
        )
    return ApplicationPassword(user, password, source=f"{user_env}/{password_env}")


@dataclass
class _SiteFacts:
    """What a site told a client, kept for the next client of the same site and login."""

    index: Mapping[str, Any] | None = None
    #: The ``_fields`` the index was read with (None: the whole index).
    index_fields: str | None = None
    style: Literal["pretty", "query"] = "pretty"
    credentials_accepted: bool = False
    listings: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Made on first use inside a running loop: two readers starting at once discover once.
    lock: anyio.Lock | None = None

    def guard(self) -> anyio.Lock:
        if self.lock is None:
            self.lock = anyio.Lock()
        return self.lock


#: (site, api style, login digest) -> facts, inside :func:`one_discovery_per_site`; None outside.
_SHARED_FACTS: ContextVar[dict[tuple[str, str, str], _SiteFacts] | None] = ContextVar(
    "flowport_wordpress_site_facts", default=None
)


@contextmanager
def one_discovery_per_site() -> Iterator[None]:
    """Within the block, the clients of one site (and one login) discover it once between them.

    A scope rather than a cache on the module: a long-lived process (a scheduler running the
    job every night) must learn the site again each run, as its permalinks or plugins change.
    """
    token = _SHARED_FACTS.set({})
    try:
        yield
    finally:
        _SHARED_FACTS.reset(token)


def _facts_for(
    site: str, api_style: ApiStyle, credentials: ApplicationPassword | None
) -> _SiteFacts:
    facts = _SiteFacts(style="query" if api_style == "query" else "pretty")
    shared = _SHARED_FACTS.get()
    if shared is None:
        return facts
    # A digest of the login, not its name: another password for the same user is another
    # reader, whose index (and whether it was accepted) must not be taken from this one.
    login = hashlib.sha256(credentials.header().encode()).hexdigest() if credentials else ""
    return shared.setdefault((site, api_style, login), facts)


class NoApiHere(Exception):
    """A 404, or a 2xx that is not JSON: the API is not at this address (or lacks the route)."""


class WordPressRefused(SourceError):
    """WordPress answered with an error status that retrying will not change."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    total: int | None
    total_pages: int | None


def _wordpress_error(body: object) -> tuple[str, str]:
    if isinstance(body, Mapping):
        return str(body.get("code") or "unknown"), decode_text(str(body.get("message") or ""))
    return "unknown", ""


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _retry_after(where: str, status: int, headers: Mapping[str, str]) -> float | None:
    """The wait a retriable answer asks for; one longer than a source wait is ever allowed
    stops the read now: waiting less would only be asked again, silently, try after try."""
    retry_after = parse_retry_after(headers.get("Retry-After"), limit=None)
    if retry_after is not None and retry_after > _MAX_BACKOFF_SECONDS:
        raise SourceError(
            f"{where}: HTTP {status} asks to wait {retry_after:.0f} s (Retry-After), longer "
            f"than flowport waits for a source ({_MAX_BACKOFF_SECONDS:.0f} s): run the job "
            "again once the site answers"
        )
    return retry_after


class WordPressApi:
    """One site's REST API over one session: the route style, auth, retries, error bodies."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        site: str,
        *,
        credentials: ApplicationPassword | None = None,
        api_style: ApiStyle = "auto",
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self._api_style = api_style
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._facts = _facts_for(site, api_style, credentials)
        self.site = site

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        site: str,
        *,
        timeout_seconds: float = 30.0,
        connections: int = 100,
        user_agent: str = "flowport",
        credentials: ApplicationPassword | None = None,
        api_style: ApiStyle = "auto",
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
    ) -> AsyncIterator[WordPressApi]:
        """A client with a session of its own, closed on the way out."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            connector=aiohttp.TCPConnector(limit=connections),
            headers={"User-Agent": user_agent},
        ) as session:
            yield cls(
                session,
                site,
                credentials=credentials,
                api_style=api_style,
                max_attempts=max_attempts,
                backoff_seconds=backoff_seconds,
            )

    def _target(self, route: str, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        if self._facts.style == "pretty":
            return f"{self.site}/wp-json{route}", dict(params)
        return f"{self.site}/", {"rest_route": route, **params}

    async def discover(self, fields: str | None = "namespaces") -> Mapping[str, Any]:
        """The REST index (only ``fields`` of it, None for all), found once per client (once
        per site inside :func:`one_discovery_per_site`): later calls answer what the first one
        read, unless they ask for more of it than that read asked for."""
        facts = self._facts
        async with facts.guard():
            known = facts.index is not None and facts.index_fields in (None, fields)
            if facts.index is None or not known:
                facts.index = await self._read_index(fields)
                facts.index_fields = fields
            return facts.index

    async def _read_index(self, fields: str | None) -> Mapping[str, Any]:
        params = {"_fields": fields} if fields else {}
        if self._facts.index is not None:  # the style is known: only more of the index is asked
            index, _ = await self.get("/", params)
            return index if isinstance(index, Mapping) else {}
        try:
            index, _ = await self.get("/", params)
        except NoApiHere as pretty_failure:
            if self._api_style != "auto":
                raise SourceError(f"{self.site}: no WordPress REST API: {pretty_failure}") from None
            self._facts.style = "query"
            try:
                index, _ = await self.get("/", params)
            except NoApiHere as query_failure:
                self._facts.style = "pretty"
                raise SourceError(
                    f"{self.site}: no WordPress REST API found: /wp-json/ gave "
                    f"{pretty_failure}; /?rest_route=/ gave {query_failure}"
                ) from None
            log.info("%s: pretty permalinks are off; using ?rest_route=", self.site)
        return index if isinstance(index, Mapping) else {}

    async def listing(self, route: str) -> Mapping[str, Any]:
        """A route answering one object that does not change during a run (``/wp/v2/types``,
        ``/wp/v2/taxonomies``), read once per client, or per site inside the scope."""
        facts = self._facts
        async with facts.guard():
            if route not in facts.listings:
                body, _ = await self.get(route, {})
                facts.listings[route] = body if isinstance(body, Mapping) else {}
            return facts.listings[route]

    async def check_credentials(self) -> None:
        """Stop when WordPress did not accept the application password (see the docstring)."""
        if self._credentials is None:
            return
        async with self._facts.guard():
            if not self._facts.credentials_accepted:
                await self._ask_who_i_am(self._credentials)
                self._facts.credentials_accepted = True

    async def _ask_who_i_am(self, credentials: ApplicationPassword) -> None:
        try:
            await self.get("/wp/v2/users/me", {"context": "edit", "_fields": "id,username"})
        except WordPressRefused as exc:
            if exc.status not in (401, 403):
                raise
            raise SourceError(
                f"{self.site}: WordPress did not accept the application password of "
                f"user {credentials.user!r} (from {credentials.source}): users/me "
                f"answered {exc}. WordPress treats a wrong application password as no login at "
                "all, so reading on would silently miss drafts and private content."
            ) from None

    async def page(self, route: str, params: Mapping[str, str], number: int) -> Page:
        """Page ``number`` of a list route, with the totals its paging headers report."""
        try:
            body, headers = await self.get(route, {**params, "page": str(number)})
        except NoApiHere as exc:
            raise SourceError(f"{self.site} {route}: {exc}") from None
        except WordPressRefused as exc:
            if number > 1 and exc.code == "rest_post_invalid_page_number":
                return Page([], None, None)  # the site shrank during the read
            raise
        if not isinstance(body, list):
            raise SourceError(
                f"{self.site} {route}: expected a JSON list, got {type(body).__name__}"
            )
        return Page(
            body, _int_header(headers, "X-WP-Total"), _int_header(headers, "X-WP-TotalPages")
        )

    async def get(self, route: str, params: Mapping[str, str]) -> tuple[Any, Mapping[str, str]]:
        url, query = self._target(route, params)
        headers = {"Accept": "application/json"}
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.header()
        where = f"{self.site} {route}"
        attempts = self._max_attempts
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                async with self._session.get(url, params=query, headers=headers) as response:
                    status = response.status
                    text = await response.text(errors="replace")
                    answer_headers = dict(response.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt == attempts:
                    raise SourceError(
                        f"{where}: no answer after {attempts} tries ({problem})"
                    ) from None
            else:
                body = _json_or_none(text)
                if 200 <= status < 300:
                    if body is None:
                        raise NoApiHere(f"HTTP {status} but not JSON: {text[:80]!r}")
                    return body, answer_headers
                code, message = _wordpress_error(body)
                if status in _RETRY_STATUSES and attempt < attempts:
                    retry_after = _retry_after(where, status, answer_headers)
                    log.info("%s: HTTP %s, try %s of %s", where, status, attempt, attempts)
                elif status == 404:
                    raise NoApiHere(f"HTTP 404 {code}: {message}")
                else:
                    raise WordPressRefused(
                        f"{where}: HTTP {status} {code}: {message or text[:120]!r}",
                        status=status,
                        code=code,
                    )
            delay = self._backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random())
            wait = min(retry_after if retry_after is not None else delay, _MAX_BACKOFF_SECONDS)
            if wait >= _ANNOUNCE_WAITS_FROM_SECONDS:
                why = "as its Retry-After asks" if retry_after is not None else "backing off"
                log.warning("%s: waiting %.0f s before try %s, %s", where, wait, attempt + 1, why)
            await anyio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")
