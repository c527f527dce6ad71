"""Job files: one TOML file says where content comes from and where in Webflow it goes.

``load_job(path)`` reads and validates the whole file before anything runs. Every problem is a
:class:`JobFileError` (a :class:`flowport.base.errors.ConfigError`) naming the file, the dotted
key at fault (``collections.posts.source.path``) and a fix; raw pydantic output never reaches the
user, and no value under a key that may hold a secret is ever echoed back.

The token is never in the job file: ``token_env`` names an environment variable, ``token_file`` a
file, and :meth:`Job.token` reads it at call time (registering it for redaction).

The state folder of ``runs/demo.toml`` is ``runs/demo/``: it is created by a run, never by
loading.

A job can also be built in Python, from a dict (:func:`job_from_dict`) or from TOML text
(:func:`job_from_toml`), with the same checks and messages; having no file, it is given the
folder its relative paths start from (``base_dir``, default the current directory) and its
state folder (``state_dir``, or ``name``, which makes it ``<base_dir>/<name>``, as a file
``<base_dir>/<name>.toml`` would).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import tomllib
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin, overload
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from flowport.base.errors import ConfigError
from flowport.base.models import CollectionSchema, FieldType
from flowport.connectors import Source
from flowport.connectors.registry import SourceConfig, source_types
from flowport.mappings import CollectionMapping, FieldMapping, webflow_slug
from flowport.mappings.slugs import is_webflow_slug
from flowport.pipeline.logging import register_secret
from flowport.pipeline.sharedbudget import check_backend

__all__ = [
    "PLAN_ITEM_LIMITS",
    "PLAN_RATE_LIMITS",
    "AssetSettings",
    "CollectionJob",
    "CollectionSchemaSpec",
    "ConflictPolicy",
    "Destination",
    "Job",
    "JobFileError",
    "JobHome",
    "RunOptions",
    "SchemaField",
    "StateSettings",
    "WriteOrder",
    "job_from_dict",
    "job_from_toml",
    "load_job",
]

#: Requests per minute Webflow grants each plan's API tokens.
PLAN_RATE_LIMITS: Final[Mapping[str, int]] = types.MappingProxyType(
    {"starter": 60, "basic": 60, "cms": 120, "business": 120}
)

#: CMS items per site by plan, as the sandbox emulates them (see PLAN_ITEM_LIMITS there: Webflow's
#: pricing pages as third parties quote them).
PLAN_ITEM_LIMITS: Final[Mapping[str, int]] = types.MappingProxyType(
    {"starter": 50, "basic": 0, "cms": 2_000, "business": 10_000}
)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: Keys whose values are never repeated in an error message.
_SENSITIVE = re.compile(r"token|password|secret|dsn|url|auth|key_file", re.IGNORECASE)
_REFERENCE_TYPES: Final = ("Reference", "MultiReference")


class JobFileError(ConfigError):
    """A problem in a job file; ``str()`` is ``<file>: <key>: <what>`` plus a ``fix:`` line.
    For a job built in Python, ``file`` is a label naming it (``job 'shop' (a dict)``)."""

    def __init__(
        self, file: Path | str, message: str, *, key: str | None = None, fix: str | None = None
    ) -> None:
        super().__init__(message, key=key, fix=fix)
        self.file = file
        self.reason = message
        self.args = (f"{file}: {self.args[0]}",)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Destination(_Strict):
    api: str = Field(
        default="sandbox",
        description='"sandbox" for the embedded sandbox, or a base URL such as '
        '"https://api.webflow.com/v2"',
    )
    site_id: str | None = Field(default=None, min_length=1)
    token_env: str | None = Field(
        default=None, description="the NAME of the environment variable holding the token"
    )
    token_file: Path | None = Field(
        default=None, description="a file holding the token; relative to the job file"
    )
    plan: Literal["starter", "basic", "cms", "business"] = "cms"
    #: The site's CMS item limit when not the plan's (an add-on, an Enterprise contract): `plan`
    #: warns past it, and the embedded sandbox enforces it.
    item_limit: int | None = Field(default=None, ge=0)
    rate_limit: int | None = Field(default=None, ge=1, le=100_000)
    rate_window_seconds: float = Field(default=60.0, gt=0, le=3600)
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("api")
    @classmethod
    def _sandbox_or_url(cls, value: str) -> str:
        if value == "sandbox":
            return value
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(
                'must be "sandbox" or an http(s) base URL such as "https://api.webflow.com/v2"'
            )
        return value.rstrip("/")

    @field_validator("token_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (like WEBFLOW_TOKEN), never the "
                "token itself"
            )
        return value

    @property
    def is_sandbox(self) -> bool:
        return self.api == "sandbox"

    @property
    def effective_rate_limit(self) -> int:
        return self.rate_limit if self.rate_limit is not None else PLAN_RATE_LIMITS[self.plan]

    @property
    def effective_item_limit(self) -> int:
        return self.item_limit if self.item_limit is not None else PLAN_ITEM_LIMITS[self.plan]


#: What a run does with an item someone else changed in Webflow since flowport last wrote it,
#: when its source record changed too (README, "Editors' changes").
ConflictPolicy = Literal["report", "overwrite", "merge"]


class RunOptions(_Strict):
    mode: Literal["live", "staged", "draft"] = "live"
    conflicts: ConflictPolicy = Field(
        default="report",
        description="an item changed in Webflow since flowport's last write whose record "
        "changed too: report (skip and name it), overwrite, or merge (only the fields the "
        "source changed)",
    )
    publish_site: bool = False
    batch_size: int = Field(default=100, ge=1, le=100)
    #: How long each source may take to open and give its first record before any write.
    source_check_seconds: float = Field(default=120.0, gt=0, le=3600)
    #: The most a run waits in all, as Webflow asks (Retry-After) or after failures (backoff),
    #: counted as wall time. A normal 429 costs at most a rate window (60 s); fifteen minutes of
    #: waiting is an outage or a quota, and a cron run should stop and say so (the next run
    #: resumes) rather than sit silent for hours.
    max_total_wait_seconds: float = Field(default=900.0, ge=0, le=7 * 86_400)
    old_site: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+",
        description="the old site's address: links to its own pages are rewritten to their "
        "Webflow items by richtext_wordpress (see flowport.pipeline.links)",
    )
    redirects_csv: Path | None = Field(
        default=None,
        description="a 301 redirects CSV for Webflow's import, rewritten at the end of every run "
        "from the items the log holds as written (needs old_site); relative to the job file",
    )

    #: Where the token's rate budget is shared (README, "Shared rate budgets"): "process" or a
    #: Redis URL; unset: FLOWPORT_RATE_BUDGET, else "process".
    rate_budget: str | None = Field(
        default=None,
        description='"process" (jobs of one process share a budget per token) or a Redis URL '
        'such as "redis://127.0.0.1:6379/0" (every process using that Redis shares it)',
    )

    @field_validator("rate_budget")
    @classmethod
    def _a_budget_backend(cls, value: str | None) -> str | None:
        return None if value is None else check_backend(value)

    @model_validator(mode="after")
    def _redirects_need_the_old_site(self) -> RunOptions:
        if self.redirects_csv is not None and self.old_site is None:
            raise ValueError(
                "redirects_csv needs old_site, the address whose paths the rows redirect"
            )
        return self


class SchemaField(_Strict):
    """A field a collection is created with when ``create_missing`` is on."""

    type: FieldType
    name: str | None = Field(default=None, min_length=1, description="display name")
    collection: str | None = Field(
        default=None, description="the job collection a Reference/MultiReference points to"
    )
    options: tuple[str, ...] | None = Field(default=None, description="an Option field's choices")
    required: bool = False
    help_text: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> SchemaField:
        if self.type in _REFERENCE_TYPES and not self.collection:
            raise ValueError(f'a {self.type} field needs collection = "<job collection>"')
        if self.collection is not None and self.type not in _REFERENCE_TYPES:
            raise ValueError(f"collection only applies to Reference fields, not {self.type}")
        if self.type == "Option" and not self.options:
            raise ValueError('an Option field needs options = ["First", "Second", ...]')
        if self.options is not None and self.type != "Option":
            raise ValueError(f"options only apply to Option fields, not {self.type}")
        return self


class CollectionSchemaSpec(_Strict):
    singular_name: str | None = Field(default=None, min_length=1)
    slug: str | None = None
    fields: dict[str, SchemaField] = Field(default_factory=dict)

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `bio = "RichText"` is short for `bio = { type = "RichText" }`.
        if isinstance(value, Mapping):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def _slugs(cls, value: dict[str, SchemaField]) -> dict[str, SchemaField]:
        for slug in value:
            if not is_webflow_slug(slug):
                raise ValueError(
                    f"'{slug}' is not a Webflow field slug (lowercase letters, digits and "
                    f"hyphens, e.g. '{webflow_slug(slug) or 'my-field'}')"
                )
        return value


def _display_name(slug: str) -> str:
    # Webflow derives a field's slug from its display name, so "reading-time" must be created
    # as "Reading Time" to come back as "reading-time".
    return " ".join(part.capitalize() for part in slug.split("-"))


class CollectionJob(CollectionMapping):
    """One ``[collections.<name>]`` table: the mapping keys sit beside the ones below."""

    target: str = Field(
        default="", description="Webflow collection slug, display name or id (default: the name)"
    )
    create_missing: bool = False
    external_key_field: str | None = Field(default=None, min_length=1)
    source: SourceConfig
    incremental: bool = Field(
        default=False,
        description="read only what changed since the last successful run (SQL cursor_column, "
        "WordPress modified_after); deletions are not detected on such runs",
    )
    locales: dict[str, dict[str, FieldMapping | str]] = Field(
        default_factory=dict,
        description="secondary locales to write, by locale tag (e.g. fr-FR): each maps the "
        "fields whose value differs in that locale; the others take the primary's value",
    )
    deletions: Literal["keep", "archive", "unpublish", "delete"] = Field(
        default="keep",
        description="what happens to items whose source record disappeared, on full reads",
    )
    max_delete_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="refuse to remove more than this share of the collection's items in one run",
    )
    conflicts: ConflictPolicy | None = Field(
        default=None, description="this collection's conflicts policy (default: [run] conflicts)"
    )
    collection_schema: CollectionSchemaSpec | None = Field(default=None, alias="schema")

    def mapping(self) -> CollectionMapping:
        """The mapping part alone, as ``flowport.mappings.compile_mapping`` takes it."""
        return CollectionMapping.model_construct(
            **{name: getattr(self, name) for name in CollectionMapping.model_fields}
        )

    def references(self) -> dict[str, str]:
        """Target field slug -> job collection it references, from the mapping and the schema."""
        found = dict(self.reference_targets())
        if self.collection_schema is not None:
            for slug, spec in self.collection_schema.fields.items():
                if spec.collection is not None:
                    found.setdefault(slug, spec.collection)
        return found

    def schema_singular_name(self) -> str:
        if self.collection_schema is not None and self.collection_schema.singular_name:
            return self.collection_schema.singular_name
        return (
            self.target[:-1]
            if self.target.endswith("s") and len(self.target) > 1
            else (self.target)
        )

    def target_slug(self) -> str:
        if self.collection_schema is not None and self.collection_schema.slug:
            return self.collection_schema.slug
        return webflow_slug(self.target)

    def planned_schema(self, name: str) -> CollectionSchema:
        """What the collection will look like once the run has created it from ``[schema]``.

        The one answer for the plan, validation and ``flowport init``'s redirect rows: Webflow
        gives every collection a required name and slug, a field's display name is the one
        :meth:`missing_fields` creates it with, and a reference names the job collection it
        points to (there is no Webflow id yet). The ``planned-`` id marks it as not created.
        """
        fields: list[dict[str, Any]] = [
            {"id": slug, "slug": slug, "displayName": slug.title(), "type": "PlainText",
             "isRequired": True}
            for slug in ("name", "slug")
        ]  # fmt: skip
        spec = self.collection_schema
        for slug, definition in spec.fields.items() if spec is not None else ():
            validations: dict[str, Any] | None = None
            if definition.options is not None:
                validations = {"options": [{"name": o, "id": o} for o in definition.options]}
            elif definition.collection is not None:
                validations = {"collectionId": definition.collection}
            fields.append(
                {
                    "id": slug,
                    "slug": slug,
                    "displayName": definition.name or _display_name(slug),
                    "type": definition.type,
                    "isRequired": definition.required,
                    "helpText": definition.help_text,
                    "validations": validations,
                }
            )
        return CollectionSchema.model_validate(
            {
                "id": f"planned-{name}",
                "displayName": self.target,
                "singularName": self.schema_singular_name(),
                "slug": self.target_slug(),
                "fields": fields,
            }
        )

    def missing_fields(
        self,
        schema: CollectionSchema,
        collection_ids: Mapping[str, str],
        *,
        skip_unknown_targets: bool = False,
    ) -> list[dict[str, Any]]:
        """Create-field bodies for the schema fields the collection lacks, in file order.

        ``collection_ids`` maps job collection names to Webflow collection ids, for references;
        with ``skip_unknown_targets``, a reference to a collection not created yet (itself, or
        one later in a cycle) is left out, to be added once its target exists.
        The API takes no slug: Webflow derives it from ``displayName``, which is why the default
        display name is the slug's words capitalised ("reading-time" -> "Reading Time").
        """
        if self.collection_schema is None:
            return []
        bodies: list[dict[str, Any]] = []
        for slug, spec in self.collection_schema.fields.items():
            if schema.field(slug) is not None:
                continue
            body: dict[str, Any] = {
                "type": spec.type,
                "displayName": spec.name or _display_name(slug),
                "isRequired": spec.required,
            }
            if spec.help_text:
                body["helpText"] = spec.help_text
            if spec.collection is not None:
                target_id = collection_ids.get(spec.collection)
                if target_id is None and skip_unknown_targets:
                    continue
                if target_id is None:
                    raise ConfigError(
                        f"the referenced collection '{spec.collection}' has no Webflow id yet",
                        key=f"schema.fields.{slug}.collection",
                        fix="reference a collection of this job",
                    )
                body["metadata"] = {"collectionId": target_id}
            if spec.options is not None:
                body["metadata"] = {"options": [{"name": name} for name in spec.options]}
            bodies.append(body)
        return bodies


OnFailure = Literal["skip", "fail", "keep_url"]
_HOST = re.compile(r"^(?:\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?$")


class FieldAssetSettings(_Strict):
    on_failure: OnFailure


class AssetSettings(_Strict):
    """``[assets]``: images and files moved into the site's assets (the assets stage)."""

    enabled: bool = False
    hosts: tuple[str, ...] = Field(
        default=(),
        description="host names of the old site whose files move (default: the sources' own)",
    )
    all_hosts: bool = False
    on_failure: OnFailure = "keep_url"
    max_file_bytes: int = Field(default=10_000_000, ge=1, le=4_000_000_000)
    concurrency: int = Field(default=4, ge=1, le=32)
    downloads_per_second: float = Field(
        default=20.0,
        gt=0,
        le=10_000,
        description="requests a second to each old-site host (downloads, a plan's HEADs)",
    )
    fields: dict[str, FieldAssetSettings] = Field(
        default_factory=dict,
        description='per field: "collection.field" (or "field", every collection) = '
        '{ on_failure = "fail" }',
    )

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hosts = []
        for entry in value:
            host = entry.strip().lower()
            if "://" in host:
                host = urlsplit(host).netloc
            if not _HOST.match(host):
                raise ValueError(
                    f"{entry!r} is not a host name; use names like 'old.example.com', "
                    "'*.example.com' or '127.0.0.1:8080'"
                )
            hosts.append(host)
        return tuple(hosts)

    def on_failure_for(self, collection: str, field_slug: str) -> OnFailure:
        chosen = self.fields.get(f"{collection}.{field_slug}") or self.fields.get(field_slug)
        return chosen.on_failure if chosen is not None else self.on_failure

    def moves(self, url: str) -> bool:
        """Whether the file at ``url`` is the old site's (and so moves into the assets)."""
        if self.all_hosts:
            return True
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        with_port = parts.netloc.rpartition("@")[2].lower()
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]) or host == allowed[2:]:
                    return True
            elif allowed in (host, with_port):
                return True
        return False


class StateSettings(_Strict):
    """``[state]``: where the job's checkpoint log, run history and lock live (default: a SQLite
    file in the state folder beside the job file; see flowport.pipeline.state)."""

    url: str | None = Field(
        default=None,
        description="a PostgreSQL URL, postgresql://user@host:5432/database (the password comes "
        "from PGPASSWORD or a .pgpass file)",
    )
    job_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the job's name in a shared database (default: the job file's name)",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "must be a PostgreSQL URL: postgresql://user@host:5432/database "
                "(leave [state] out to keep the state in a SQLite file beside the job)"
            )
        if parts.password is not None:
            raise ValueError(
                "the password never goes in the job file: remove it from the URL and set "
                "PGPASSWORD, or put it in a .pgpass file (PGPASSFILE names another)"
            )
        return value.strip()


class _JobFile(_Strict):
    destination: Destination = Field(default_factory=Destination)
    run: RunOptions = Field(default_factory=RunOptions)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    collections: dict[str, CollectionJob] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class WriteOrder(Sequence[str]):
    """Job collections in write order: every Reference target before what points to it.

    ``cycles`` are groups that reference each other (or themselves); ``deferred`` names, per
    collection, the reference fields whose target is written at the same time or later: the
    runner writes items without them first and sets them in a second pass.
    """

    names: tuple[str, ...]
    cycles: tuple[tuple[str, ...], ...] = ()
    deferred: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self.names[index]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


@dataclass(frozen=True, slots=True)
class JobHome:
    """Where a job built in Python lives, having no file: its name, the folder its relative
    paths start from, and its state folder."""

    name: str
    base_dir: Path
    state_dir: Path
    #: Names the job in messages, where a job file's path would be.
    label: str


@dataclass(frozen=True, slots=True)
class Job:
    #: The job file; for a job built in Python, its label (see :attr:`home`).
    path: Path
    destination: Destination
    run: RunOptions
    collections: Mapping[str, CollectionJob]
    _order: WriteOrder = field(repr=False)
    assets: AssetSettings = field(default_factory=AssetSettings)
    state: StateSettings = field(default_factory=StateSettings)
    #: Set for a job built from a dict or TOML text: it has no file to be beside.
    home: JobHome | None = None

    @property
    def name(self) -> str:
        """The job's name: its file's stem (``runs/demo.toml`` → ``demo``)."""
        return self.home.name if self.home is not None else self.path.stem

    @property
    def label(self) -> str:
        """How messages name the job: its file, or the label of a job built in Python."""
        return self.home.label if self.home is not None else str(self.path)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the job file (sources, token_file) are relative to this."""
        return self.home.base_dir if self.home is not None else self.path.parent

    @property
    def state_dir(self) -> Path:
        if self.home is not None:
            return self.home.state_dir
        return self.path.parent / self.path.stem

    def write_order(self) -> WriteOrder:
        return self._order

    def rate_limit(self) -> int:
        return self.destination.effective_rate_limit

    def conflict_policy(self, collection: str) -> ConflictPolicy:
        return self.collections[collection].conflicts or self.run.conflicts

    def with_conflicts(self, policy: ConflictPolicy) -> Job:
        """The job with every collection's conflicts policy set to ``policy`` (one run's
        ``--conflicts``)."""
        collections = {
            name: c.model_copy(update={"conflicts": policy}) for name, c in self.collections.items()
        }
        return dataclasses.replace(
            self, run=self.run.model_copy(update={"conflicts": policy}), collections=collections
        )

    def token(self) -> SecretStr:
        """The API token, read now from the environment or the token file."""
        destination = self.destination
        if destination.token_env is not None:
            value = os.environ.get(destination.token_env, "").strip()
            if not value:
                raise JobFileError(
                    self.label,
                    f"the environment variable {destination.token_env} is not set",
                    key="destination.token_env",
                    fix=f"set {destination.token_env} in the environment or use token_file",
                )
        elif destination.token_file is not None:
            path = self.token_file_path()
            assert path is not None
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise JobFileError(
                    self.label,
                    f"cannot read the token file {path} ({exc.__class__.__name__})",
                    key="destination.token_file",
                    fix="create the file with the token on one line (mode 0600), or use token_env",
                ) from None
            if not value:
                raise JobFileError(
                    self.label,
                    f"the token file {path} is empty",
                    key="destination.token_file",
                    fix="write the token into it, or use token_env",
                )
        else:
            raise JobFileError(
                self.label,
                "no token is configured",
                key="destination.token_env",
                fix='set token_env = "WEBFLOW_TOKEN" (and export WEBFLOW_TOKEN) or token_file',
            )
        register_secret(value)
        return SecretStr(value)

    def token_file_path(self) -> Path | None:
        token_file = self.destination.token_file
        if token_file is None:
            return None
        return token_file if token_file.is_absolute() else self.base_dir / token_file

    def token_file_warning(self) -> str | None:
        """A warning when the token file can be read by others than its owner, as ssh gives
        for a private key (it refuses one; a token file is only warned about)."""
        path = self.token_file_path()
        if path is None or self.destination.token_env is not None:
            return None
        try:
            mode = path.stat().st_mode
        except OSError:
            return None  # reading the token says what is wrong with the file
        if not mode & 0o077:
            return None
        return (
            f"the token file {path} can be read by others than its owner (mode "
            f"{stat.S_IMODE(mode):04o}): anyone who can read it can write to the site; "
            f"fix: chmod 600 {path}"
        )

    def open_source(self, collection: str) -> Source:
        return self.collections[collection].source.open(base_dir=self.base_dir, env=os.environ)


# ---- loading ------------------------------------------------------------------------------


def load_job(path: Path) -> Job:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JobFileError(path, "no such job file", fix="check the path") from None
    except OSError as exc:
        raise JobFileError(path, f"cannot read the job file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobFileError(
            path, f"not UTF-8 text (byte {exc.start})", fix="save the job file as UTF-8"
        ) from None
    return _build_job(path, _parse_toml(path, text), path=path)


def job_from_toml(
    text: str,
    *,
    base_dir: str | Path | None = None,
    name: str | None = None,
    state_dir: str | Path | None = None,
) -> Job:
    """A job from TOML text, as a job file holds it; see :func:`job_from_dict` for the rest."""
    home = _home(base_dir, name, state_dir, "TOML text")
    data = _parse_toml(home.label, text)
    return _build_job(home.label, data, path=Path(home.label), home=home)


def job_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: str | Path | None = None,
    name: str | None = None,
    state_dir: str | Path | None = None,
) -> Job:
    """A job from a dict shaped like a job file's TOML, checked as a file is, with the same
    :class:`JobFileError` messages (the label ``job 'shop' (a dict)`` names it).

    Relative paths in it (sources, ``token_file``, ``redirects_csv``) start at ``base_dir``
    (default: the current directory, taken now). Its state folder (checkpoint log, lock, the
    embedded sandbox's state) is ``state_dir`` (relative to ``base_dir``), or
    ``<base_dir>/<name>``; one of them must be given: two jobs sharing a state folder by
    accident would share a checkpoint log."""
    home = _home(base_dir, name, state_dir, "a dict")
    if not isinstance(data, Mapping):
        raise JobFileError(
            home.label,
            f"a job is a dict of tables, not a {type(data).__name__}",
            fix="pass a dict shaped like a job file: {'destination': {...}, 'collections': {...}}",
        )
    return _build_job(home.label, data, path=Path(home.label), home=home)


def _home(
    base_dir: str | Path | None, name: str | None, state_dir: str | Path | None, origin: str
) -> JobHome:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if state_dir is not None:
        state = Path(state_dir)
        state = state if state.is_absolute() else base / state
    elif name is not None:
        if not _COLLECTION_NAME.match(name):
            raise ConfigError(
                f"'{name}' is not a usable job name",
                key="name",
                fix="use letters, digits, '-' and '_': it names the state folder",
            )
        state = base / name
    else:
        raise ConfigError(
            f"a job built from {origin} needs a state folder (its checkpoint log and lock)",
            key="name",
            fix=f"pass name='shop' (state in {base / 'shop'}) or state_dir='…'",
        )
    job_name = name if name is not None else state.name
    return JobHome(job_name, base, state, label=f"job {job_name!r} ({origin})")


def _parse_toml(source: Path | str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        position = f"at line {where[1]}, column {where[2]}" if where else "where it says"
        raise JobFileError(
            source,
            f"TOML syntax error: {exc}",
            fix=f"correct the TOML syntax {position}",
        ) from None


def _build_job(
    source: Path | str, data: Mapping[str, Any], *, path: Path, home: JobHome | None = None
) -> Job:
    """The checks every job meets, from a file or built in Python; ``source`` names it."""
    try:
        spec = _JobFile.model_validate(data)
    except ValidationError as exc:
        raise _translate(source, exc) from None
    _check_destination(source, spec.destination)
    collections: dict[str, CollectionJob] = {}
    for name, collection in spec.collections.items():
        if not _COLLECTION_NAME.match(name):
            raise JobFileError(
                source,
                f"'{name}' is not a usable collection name",
                key=f"collections.{name}",
                fix="use letters, digits, '-' and '_' (e.g. [collections.blog-posts])",
            )
        if not collection.target:
            collection = collection.model_copy(update={"target": name})
        # A dataframe's or dlt table's schema can come from its column types alone.
        if (
            collection.create_missing
            and collection.collection_schema is None
            and collection.source.type not in ("dataframe", "dlt")
        ):
            raise JobFileError(
                source,
                "create_missing = true needs a schema to create the collection from",
                key=f"collections.{name}.schema",
                fix=f"add [collections.{name}.schema] with singular_name and fields",
            )
        collections[name] = collection
    return Job(
        path=path,
        destination=spec.destination,
        run=spec.run,
        collections=types.MappingProxyType(collections),
        _order=_write_order(source, collections),
        assets=_check_assets(source, spec.assets, collections),
        state=spec.state,
        home=home,
    )


def _check_assets(
    path: Path | str, assets: AssetSettings, collections: Mapping[str, CollectionJob]
) -> AssetSettings:
    """Per-field keys must name mapped fields; the old site's hosts default to the sources'."""
    for key in assets.fields:
        name, _, slug = key.rpartition(".")
        known = [collections[name]] if name in collections else []
        if name and not known:
            raise JobFileError(
                path,
                f"'{key}' names no collection of this job",
                key=f"assets.fields.{key}",
                fix=f"use 'collection.field' with one of: {', '.join(collections)}",
            )
        if not any(slug in c.fields for c in known or collections.values()):
            raise JobFileError(
                path,
                f"'{key}' names no mapped field",
                key=f"assets.fields.{key}",
                fix="use the slug of a field under [collections.<name>.fields]",
            )
    if not assets.enabled or assets.all_hosts or assets.hosts:
        return assets
    hosts = sorted({h for c in collections.values() for h in _own_hosts(c)})
    if not hosts:
        raise JobFileError(
            path,
            "no source names the old site, so which files move is unknown",
            key="assets.hosts",
            fix='list the old site\'s hosts: hosts = ["old.example.com"] (or all_hosts = true)',
        )
    return assets.model_copy(update={"hosts": tuple(hosts)})


def _own_hosts(collection: CollectionJob) -> list[str]:
    """The hosts a collection's source itself names: its site address, the mapping's base."""
    urls = [collection.base_url, getattr(collection.source, "base_url", None)]
    return [urlsplit(u).netloc.lower() for u in urls if isinstance(u, str) and "://" in u]


def _check_destination(path: Path | str, destination: Destination) -> None:
    if destination.is_sandbox:
        if destination.token_env is not None and destination.token_file is not None:
            raise JobFileError(
                path,
                "token_env and token_file are both set",
                key="destination.token_file",
                fix="keep exactly one of them",
            )
        return
    if destination.site_id is None:
        raise JobFileError(
            path,
            f'site_id is required with api = "{destination.api}"',
            key="destination.site_id",
            fix='add site_id = "<your site id>" (Webflow: Site settings > General), or use '
            'api = "sandbox"',
        )
    given = [k for k in ("token_env", "token_file") if getattr(destination, k) is not None]
    if len(given) != 1:
        raise JobFileError(
            path,
            "no token source is set" if not given else "token_env and token_file are both set",
            key="destination.token_env",
            fix='set exactly one: token_env = "WEBFLOW_TOKEN" (the variable\'s name) or '
            'token_file = "<file holding the token>"',
        )


def _write_order(path: Path | str, collections: Mapping[str, CollectionJob]) -> WriteOrder:
    names = list(collections)
    edges = _reference_edges(path, collections)
    components = _strongly_connected(names, edges)
    order = [name for component in components for name in component]
    position = {name: i for i, name in enumerate(order)}
    cycles = tuple(
        tuple(component)
        for component in components
        if len(component) > 1 or any(t == component[0] for _, t in edges[component[0]])
    )
    deferred = {
        name: frozenset(slug for slug, target in edges[name] if position[target] >= position[name])
        for name in order
    }
    return WriteOrder(
        names=tuple(order),
        cycles=cycles,
        deferred=types.MappingProxyType({k: v for k, v in deferred.items() if v}),
    )


def _reference_edges(
    path: Path | str, collections: Mapping[str, CollectionJob]
) -> dict[str, list[tuple[str, str]]]:
    """Per collection, its (reference field, target collection) pairs; a target that is not a
    collection of the job is a bad job file."""
    names = list(collections)
    edges: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for name, collection in collections.items():
        sources = collection.reference_targets()
        for slug, target in collection.references().items():
            if target not in collections:
                origin = "fields" if slug in sources else "schema.fields"
                suffix = "reference" if slug in sources else "collection"
                close = difflib.get_close_matches(target, names, n=1)
                raise JobFileError(
                    path,
                    f"references '{target}', which is not a collection of this job",
                    key=f"collections.{name}.{origin}.{slug}.{suffix}",
                    fix=(f"did you mean '{close[0]}'? " if close else "")
                    + f"job collections: {', '.join(names)}",
                )
            edges[name].append((slug, target))
    return edges


def _strongly_connected(
    names: list[str], edges: Mapping[str, list[tuple[str, str]]]
) -> list[list[str]]:
    """Tarjan's strongly connected components; each emitted component's dependencies come
    first, and a component's members keep the job file's order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for _, target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component, key=names.index))

    for name in names:
        if name not in index:
            visit(name)
    return components


# ---- translating pydantic errors ------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if _is_union(annotation):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    type_field = model.model_fields.get("type")
    return get_args(type_field.annotation) if type_field is not None else ()


def _union_member(members: Sequence[Any], part: str | int) -> tuple[bool, Any]:
    """Whether ``part`` is pydantic's label for a union branch, and the branch it names."""
    if not isinstance(part, str):
        return False, None
    for member in members:
        name = getattr(member, "__name__", None)
        if name == part or (_is_model(member) and part in _tags(member)):
            return True, member
    if part.startswith(("function-", "json-or-python", "literal[", "list[", "dict[", "tuple[")):
        models = [m for m in members if _is_model(m)]
        return True, models[0] if models else None
    return False, None


def _model_field(model: type[BaseModel], name: str) -> Any:
    for field_name, info in model.model_fields.items():
        if (info.alias or field_name) == name:
            return info
    return None


@dataclass
class _Located:
    key: str
    parent: Any  # the type holding the last key, for suggestions
    last: str | int | None
    description: str | None
    ended_on_label: bool


def _locate(loc: tuple[str | int, ...]) -> _Located:
    parts: list[str] = []
    current: Any = _JobFile
    parent: Any = None
    description: str | None = None
    ended_on_label = False
    last: str | int | None = None
    for part in loc:
        current = _unwrap(current)
        # A one-branch union collapses to its branch, but pydantic still names the tag.
        branches = get_args(current) if _is_union(current) else (current,)
        is_label, member = _union_member(branches, part)
        if is_label and not (_is_model(current) and _model_field(current, str(part))):
            current = member
            ended_on_label = True
            continue
        ended_on_label = False
        parent = current
        last = part
        description = None
        if isinstance(part, int):
            parts.append(f"[{part}]")
            args = get_args(current)
            current = args[0] if args else None
        elif _is_model(current):
            info = _model_field(current, part)
            parts.append(part)
            current = info.annotation if info is not None else None
            description = info.description if info is not None else None
        elif get_origin(current) is dict:
            parts.append(part)
            current = get_args(current)[1]
        else:
            parts.append(str(part))
            current = None
    key = ".".join(parts).replace(".[", "[")
    return _Located(key, _unwrap(parent), last, description, ended_on_label)


def _valid_keys(model: Any) -> list[str]:
    if not _is_model(model):
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _shown(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool) and len(repr(value)) <= 60:
        return repr(value)
    return None


def _describe(error: Mapping[str, Any], located: _Located) -> tuple[str, str | None]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    last = located.last
    sensitive = bool(_SENSITIVE.search(located.key))
    if kind == "extra_forbidden":
        if (
            located.key.startswith("destination.")
            and isinstance(last, str)
            and ("token" in last or "secret" in last or "password" in last)
        ):
            return (
                f"unknown key '{last}': the token never goes in the job file",
                'set token_env = "WEBFLOW_TOKEN" (the NAME of the variable holding it) or '
                'token_file = "<file holding it>"',
            )
        valid = _valid_keys(located.parent)
        close = difflib.get_close_matches(str(last), valid, n=3, cutoff=0.5)
        if close:
            fix = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        elif valid:
            fix = f"valid keys here: {', '.join(valid)}"
        else:
            fix = "remove it"
        return f"unknown key '{last}'", fix
    if kind == "missing" and located.key == "collections":
        return "no collection to write", "add at least one [collections.<name>] table"
    if kind == "missing":
        about = f" ({located.description})" if located.description else ""
        return "required key is missing", f"add {last} = …{about}"
    if kind == "union_tag_invalid":
        expected = (
            ", ".join(source_types())
            if located.key.endswith("source")
            else str(ctx.get("expected_tags", ""))
        )
        tag = str(ctx.get("tag", ""))
        close = difflib.get_close_matches(tag, [t.strip("' ") for t in expected.split(",")], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown type '{tag}'", f"{hint}use one of: {expected}"
    if kind == "union_tag_not_found":
        expected = ", ".join(source_types()) if located.key.endswith("source") else ""
        return "the table has no 'type' key", f"add type = one of: {expected}".rstrip(": ")
    if kind == "literal_error":
        expected_text = str(ctx.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected_text)
        given = error.get("input")
        close = (
            difflib.get_close_matches(str(given), choices, n=1) if isinstance(given, str) else []
        )
        got = "" if sensitive or _shown(given) is None else f" (got {_shown(given)})"
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"must be one of {expected_text}{got}", f"{hint}use one of: {', '.join(choices)}"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    given = error.get("input")
    got = ""
    if not sensitive and not kind.startswith("value_error") and _shown(given) is not None:
        got = f" (got {_shown(given)})"
    return f"{message}{got}", _range_fix(kind, located)


#: pydantic's error kinds for a number out of its field's range.
_RANGE_ERRORS: Final = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _range_fix(kind: str, located: _Located) -> str | None:
    """For a value out of range, the range the key takes (from the field's own bounds), like
    every other job-file error's ``fix:`` line."""
    if kind in ("string_too_short", "too_short"):
        return f"give {located.last} a non-empty value, or remove it"
    if kind not in _RANGE_ERRORS or not _is_model(located.parent):
        return None
    info = _model_field(located.parent, str(located.last))
    if info is None:
        return None
    # pydantic keeps each bound as an annotated-types object with one of these attributes.
    bounds = {
        name: getattr(bound, name)
        for bound in info.metadata
        for name in ("ge", "gt", "le", "lt")
        if hasattr(bound, name)
    }
    if "ge" in bounds and "le" in bounds:
        limits = f"from {bounds['ge']:,} to {bounds['le']:,}"
    else:
        words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
        limits = " and ".join(f"{words[name]} {value:,}" for name, value in bounds.items())
    return f"set {located.last} to a value {limits}" if limits else None


def _translate(path: Path | str, exc: ValidationError) -> JobFileError:
    errors = exc.errors(include_url=False)
    located = [(error, _locate(tuple(error["loc"]))) for error in errors]
    # A value that fits no branch of `FieldMapping | str` fails in each; the branch whose type
    # does not even match is noise beside the one that explains the real problem.
    meaningful = [
        (error, where)
        for error, where in located
        if not (where.ended_on_label and str(error["type"]).endswith("_type"))
    ] or located
    # An unknown key usually explains the missing one next to it (a typo): show it first.
    meaningful.sort(key=lambda pair: pair[0]["type"] != "extra_forbidden")
    first_error, first_where = meaningful[0]
    message, fix = _describe(first_error, first_where)
    for error, where in meaningful[1:6]:
        more, _ = _describe(error, where)
        message += f"\n  also: {where.key or '(top level)'}: {more}"
    if len(meaningful) > 6:
        message += f"\n  and {len(meaningful) - 6} more"
    return JobFileError(path, message, key=first_where.key or None, fix=fix)
