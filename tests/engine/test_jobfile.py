from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from flowport.base.errors import ConfigError
from flowport.base.models import CollectionSchema
from flowport.mappings import CollectionMapping
from flowport.pipeline.jobfile import Job, JobFileError, load_job
from flowport.pipeline.logging import clear_secrets, redact
from tests.conftest import REPO

BASE = textwrap.dedent(
    """
    [destination]
    api = "sandbox"

    [run]
    mode = "live"

    [collections.authors]
    target = "Authors"
    create_missing = true
    source = { type = "csv", path = "authors.csv", key = "id" }
    slug_from = "name"

    [collections.authors.fields]
    name = "name"
    bio = { source = "bio", transforms = ["markdown"] }

    [collections.authors.schema]
    singular_name = "Author"
    fields = { bio = "RichText", twitter = "Link" }

    [collections.posts]
    source = { type = "csv", path = "posts.csv", key = "id" }

    [collections.posts.fields]
    name = "title"
    author = { source = "author_id", reference = "authors" }
    """
)


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> JobFileError:
    path = write(tmp_path, text)
    with pytest.raises(JobFileError) as caught:
        load_job(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_the_demo_job_loads() -> None:
    job = load_job(REPO / "runs" / "demo.toml")
    assert list(job.collections) == ["authors", "posts"]
    assert list(job.write_order()) == ["authors", "posts"]
    assert job.state_dir == REPO / "runs" / "demo"
    assert job.destination.is_sandbox
    assert job.run.mode == "live"
    posts = job.collections["posts"]
    assert posts.create_missing
    assert posts.references() == {"author": "authors"}
    assert posts.source.type == "csv"
    assert (job.base_dir / "demo-data" / "posts.csv").is_file()


def test_load_builds_the_job_without_touching_the_disk(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, BASE, "nightly.toml"))
    assert isinstance(job, Job)
    assert job.state_dir == tmp_path / "nightly"
    assert not job.state_dir.exists()
    assert job.collections["posts"].target == "posts"  # defaults to the collection's name
    assert job.collections["authors"].target == "Authors"
    assert job.run.batch_size == 100
    assert job.destination.concurrency == 4


def test_mapping_keys_live_in_the_collection_table(tmp_path: Path) -> None:
    authors = load_job(write(tmp_path, BASE)).collections["authors"]
    mapping = authors.mapping()
    assert type(mapping) is CollectionMapping
    assert mapping.slug_from == "name"
    assert set(mapping.field_mappings()) == {"name", "bio"}
    assert mapping.field_mappings()["bio"].transforms == ["markdown"]


@pytest.mark.parametrize(
    ("plan", "override", "expected"),
    [
        ("starter", None, 60),
        ("basic", None, 60),
        ("cms", None, 120),
        ("business", None, 120),
        ("cms", 30, 30),
    ],
)
def test_rate_limit_from_plan_or_override(
    tmp_path: Path, plan: str, override: int | None, expected: int
) -> None:
    extra = f'plan = "{plan}"' + (f"\nrate_limit = {override}" if override else "")
    job = load_job(write(tmp_path, BASE.replace('api = "sandbox"', f'api = "sandbox"\n{extra}')))
    assert job.rate_limit() == expected


CASES = [
    ("\n[runn]\nmode = 'live'\n", "runn", ["unknown key 'runn'"], "did you mean 'run'"),
    (
        ('api = "sandbox"', 'api = "sandbox"\nsite_idd = "x"'),
        "destination.site_idd",
        ["unknown key"],
        "'site_id'",
    ),
    (
        ('path = "authors.csv"', 'pth = "authors.csv"'),
        "collections.authors.source.pth",
        ["unknown key 'pth'", "collections.authors.source.path: required key is missing"],
        "did you mean 'path'",
    ),
    (
        ('type = "csv", path = "authors.csv"', 'type = "cvs", path = "authors.csv"'),
        "collections.authors.source",
        ["unknown type 'cvs'"],
        "did you mean 'csv'",
    ),
    (('mode = "live"', 'mode = "lve"'), "run.mode", ["(got 'lve')"], "did you mean 'live'"),
    (('mode = "live"', "batch_size = 500"), "run.batch_size", ["100"], None),
    (
        ('transforms = ["markdown"]', 'transformz = ["markdown"]'),
        "collections.authors.fields.bio.transformz",
        ["unknown key"],
        "did you mean 'transforms'",
    ),
    (
        ('bio = "RichText"', 'bio = "Richtext"'),
        "collections.authors.schema.fields.bio.type",
        ["must be one of"],
        "did you mean 'RichText'",
    ),
    (
        ('twitter = "Link"', 'author = { type = "Reference" }'),
        "collections.authors.schema.fields.author",
        ['needs collection = "<job collection>"'],
        None,
    ),
    (
        ('reference = "authors"', 'reference = "author"'),
        "collections.posts.fields.author.reference",
        ["'author', which is not a collection of this job"],
        "did you mean 'authors'",
    ),
    (
        ('api = "sandbox"', 'api = "https://api.webflow.com/v2"\ntoken_env = "WEBFLOW_TOKEN"'),
        "destination.site_id",
        ["site_id is required"],
        "site_id =",
    ),
    (
        ('api = "sandbox"', 'api = "https://api.webflow.com/v2"\nsite_id = "s1"'),
        "destination.token_env",
        ["no token source is set"],
        'token_env = "WEBFLOW_TOKEN"',
    ),
    (('api = "sandbox"', 'api = "webflow"'), "destination.api", ["http(s) base URL"], None),
    (
        ("create_missing = true\n", "create_missing = true\n", "schema"),
        "collections.authors.schema",
        ["needs a schema"],
        "[collections.authors.schema]",
    ),
]


@pytest.mark.parametrize(("change", "key", "messages", "fix"), CASES)
def test_errors_name_the_file_the_key_and_a_fix(
    tmp_path: Path,
    change: str | tuple[str, ...],
    key: str,
    messages: list[str],
    fix: str | None,
) -> None:
    if isinstance(change, str):
        text = BASE + change
    elif len(change) == 3:
        start = BASE.index("[collections.authors.schema]")
        end = BASE.index("[collections.posts]")
        text = BASE[:start] + BASE[end:]
    else:
        assert change[0] in BASE
        text = BASE.replace(change[0], change[1], 1)
    error = load_error(tmp_path, text)
    assert error.key == key
    assert str(error).startswith(f"{tmp_path / 'job.toml'}: {key}: ")
    for message in messages:
        assert message in str(error)
    if fix is not None:
        assert error.fix is not None
        assert fix in error.fix
    assert "pydantic" not in str(error).lower()
    assert "errors.pydantic.dev" not in str(error)


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace('mode = "live"', 'mode = "live'))
    assert "line 6" in str(error)
    assert error.fix is not None
    assert "line 6, column" in error.fix


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match="no such job file"):
        load_job(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes("[run]\nmode = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(JobFileError, match="not UTF-8"):
        load_job(path)


def test_no_collections_is_explained(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[destination]\napi = "sandbox"\n')
    assert error.key == "collections"
    assert error.fix == "add at least one [collections.<name>] table"


def test_a_token_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret = "wf_live_4f1b2c3d4e5f60718293a4b5"
    error = load_error(tmp_path, BASE.replace('api = "sandbox"', f'token = "{secret}"'))
    assert error.key == "destination.token"
    assert "never goes in the job file" in str(error)
    assert secret not in str(error)
    error = load_error(tmp_path, BASE.replace('api = "sandbox"', f'token_env = "{secret}-x"'))
    assert error.key == "destination.token_env"
    assert secret not in str(error)
    assert "never the token itself" in str(error)


def test_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.replace(
        'api = "sandbox"',
        'api = "http://127.0.0.1:1/v2"\nsite_id = "site1"\ntoken_env = "FLOWPORT_TEST_TOKEN"',
    )
    job = load_job(write(tmp_path, text))
    monkeypatch.delenv("FLOWPORT_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        job.token()
    assert caught.value.key == "destination.token_env"
    assert caught.value.fix == "set FLOWPORT_TEST_TOKEN in the environment or use token_file"
    monkeypatch.setenv("FLOWPORT_TEST_TOKEN", "tok-abcdef-123456")
    try:
        token = job.token()
        assert isinstance(token, SecretStr)
        assert token.get_secret_value() == "tok-abcdef-123456"
        assert "tok-abcdef" not in repr(token)
        assert redact("Bearer tok-abcdef-123456") == "Bearer ***"
    finally:
        clear_secrets()


def test_token_from_a_file_relative_to_the_job(tmp_path: Path) -> None:
    text = BASE.replace(
        'api = "sandbox"',
        'api = "https://api.webflow.com/v2"\nsite_id = "site1"\ntoken_file = "secrets/token"',
    )
    job = load_job(write(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot read the token file") as caught:
        job.token()
    assert caught.value.key == "destination.token_file"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("   \n")
    with pytest.raises(ConfigError, match="is empty"):
        job.token()
    (tmp_path / "secrets" / "token").write_text("file-token-0987\n")
    try:
        assert job.token().get_secret_value() == "file-token-0987"
    finally:
        clear_secrets()


def test_write_order_puts_references_first_whatever_the_file_order(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        [collections.comments]
        source = { type = "csv", path = "c.csv", key = "id" }
        fields = { name = "n", post = { source = "p", reference = "posts" } }
        [collections.posts]
        source = { type = "csv", path = "p.csv", key = "id" }
        fields = { name = "n", author = { source = "a", reference = "authors" } }
        [collections.tags]
        source = { type = "csv", path = "t.csv", key = "id" }
        fields = { name = "n" }
        [collections.authors]
        source = { type = "csv", path = "a.csv", key = "id" }
        fields = { name = "n" }
        """
    )
    order = load_job(write(tmp_path, text)).write_order()
    names = list(order)
    assert sorted(names) == ["authors", "comments", "posts", "tags"]
    assert names.index("authors") < names.index("posts") < names.index("comments")
    assert order.cycles == ()
    assert dict(order.deferred) == {}


def test_self_references_and_cycles_are_reported_for_two_passes(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        [collections.people]
        source = { type = "csv", path = "a.csv", key = "id" }
        fields = { name = "n", mentor = { source = "m", reference = "people" } }
        [collections.teams]
        source = { type = "csv", path = "t.csv", key = "id" }
        fields = { name = "n", lead = { source = "l", reference = "projects" } }
        [collections.projects]
        source = { type = "csv", path = "p.csv", key = "id" }
        [collections.projects.fields]
        name = "n"
        team = { source = "t", reference = "teams" }
        owner = { source = "o", reference = "people" }
        """
    )
    order = load_job(write(tmp_path, text)).write_order()
    assert order[0] == "people"
    assert set(order.cycles) == {("people",), ("teams", "projects")}
    assert order.deferred["people"] == {"mentor"}
    # Within the teams/projects cycle exactly one side waits for the second pass.
    deferred = {f"{c}.{f}" for c in ("teams", "projects") for f in order.deferred.get(c, ())}
    assert deferred in ({"teams.lead"}, {"projects.team"})
    assert "owner" not in order.deferred.get("projects", frozenset())


def test_schema_references_count_for_the_order(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        [collections.posts]
        create_missing = true
        source = { type = "csv", path = "p.csv", key = "id" }
        fields = { name = "n" }
        schema = { fields = { author = { type = "Reference", collection = "authors" } } }
        [collections.authors]
        source = { type = "csv", path = "a.csv", key = "id" }
        fields = { name = "n" }
        """
    )
    assert list(load_job(write(tmp_path, text)).write_order()) == ["authors", "posts"]
    error = load_error(tmp_path, text.replace('collection = "authors"', 'collection = "writers"'))
    assert error.key == "collections.posts.schema.fields.author.collection"


def test_missing_fields_builds_create_field_bodies(tmp_path: Path) -> None:
    job = load_job(REPO / "runs" / "demo.toml")
    posts = job.collections["posts"]
    existing = CollectionSchema.model_validate(
        {
            "id": "c-posts",
            "displayName": "Posts",
            "fields": [
                {"id": "f1", "slug": "name", "displayName": "Name", "type": "PlainText"},
                {"id": "f2", "slug": "body", "displayName": "Body", "type": "RichText"},
            ],
        }
    )
    bodies = posts.missing_fields(existing, {"authors": "c-authors", "posts": "c-posts"})
    by_name = {body["displayName"]: body for body in bodies}
    assert "Body" not in by_name
    assert by_name["Author"]["type"] == "Reference"
    assert by_name["Author"]["metadata"] == {"collectionId": "c-authors"}
    assert by_name["Author"]["helpText"] == "Who wrote it"
    assert by_name["Category"]["metadata"]["options"][0] == {"name": "Engineering"}
    assert by_name["Reading Time"] == {
        "type": "Number",
        "displayName": "Reading Time",
        "isRequired": False,
    }
    assert all("slug" not in body for body in bodies)
    assert posts.schema_singular_name() == "Post"
    assert posts.target_slug() == "posts"
    with pytest.raises(ConfigError, match="no Webflow id yet"):
        posts.missing_fields(existing, {})


def test_one_planned_schema_for_the_plan_and_the_preset(tmp_path: Path) -> None:
    # There were two answers: the runner's had the built-in name and slug fields and reference
    # targets but no collection slug, and display names that were bare slugs; flowport init's
    # had the slug but neither built-in field nor reference targets. Now there is one, and it
    # is what the run creates (the same names as missing_fields, the same slug and singular).
    job = load_job(REPO / "runs" / "demo.toml")
    posts = job.collections["posts"]
    planned = posts.planned_schema("posts")
    assert planned.id == "planned-posts"  # the runner tells a planned collection by this
    assert (planned.display_name, planned.slug) == (posts.target, posts.target_slug())
    assert planned.singular_name == posts.schema_singular_name() == "Post"
    slugs = [field.slug for field in planned.fields]
    assert slugs[:2] == ["name", "slug"]
    assert all(planned.fields[i].is_required for i in (0, 1))
    assert posts.collection_schema is not None
    assert slugs[2:] == list(posts.collection_schema.fields)
    author = planned.field("author")
    assert author is not None
    assert author.referenced_collection_id == "authors"
    assert author.help_text == "Who wrote it"
    category = planned.field("category")
    assert category is not None
    assert "Engineering" in category.options
    source_key = planned.field("source-key")
    assert source_key is not None
    assert source_key.display_name == "Source Key"
    bare = planned.model_copy(update={"fields": planned.fields[:2]})
    created = posts.missing_fields(bare, {"authors": "c-authors"})
    assert [body["displayName"] for body in created] == [
        field.display_name for field in planned.fields[2:]
    ]
