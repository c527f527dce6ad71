"""A first run creates each collection with its fields in one request (issue 16): what points
to a collection is created after it; a reference to itself or around a cycle is added after."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import write_csv
from tests.engine.conftest import sandbox_stats

# Posts point to authors and tags; tags to their parent tag (themselves); authors to their
# favourite post (a cycle with posts). Written in that order: authors, tags, posts... except
# that the cycle makes one of authors/posts wait for the other's id.
JOB = """
[destination]
api = "{base_url}"
site_id = "{site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000
concurrency = 4

[run]
mode = "live"

[collections.authors]
target = "Authors"
create_missing = true
source = {{ type = "csv", path = "authors.csv", key = "id" }}
slug_from = "name"
[collections.authors.fields]
name = "name"
email = "email"
bio = "bio"
favourite = {{ source = "favourite", reference = "posts" }}
[collections.authors.schema]
singular_name = "Author"
fields = {{ email = "Email", bio = "PlainText", favourite = {{ type = "Reference", collection = "posts" }} }}

[collections.tags]
target = "Tags"
create_missing = true
source = {{ type = "csv", path = "tags.csv", key = "id" }}
slug_from = "name"
[collections.tags.fields]
name = "name"
colour = "colour"
parent = {{ source = "parent", reference = "tags" }}
[collections.tags.schema]
singular_name = "Tag"
fields = {{ colour = "PlainText", parent = {{ type = "Reference", collection = "tags" }} }}

[collections.posts]
target = "Posts"
create_missing = true
source = {{ type = "csv", path = "posts.csv", key = "id" }}
slug_from = "name"
[collections.posts.fields]
name = "title"
body = "body"
words = {{ source = "words", transforms = ["number"] }}
author = {{ source = "author", reference = "authors" }}
tag = {{ source = "tag", reference = "tags" }}
[collections.posts.schema]
singular_name = "Post"
fields = {{ body = "RichText", words = "Number", author = {{ type = "Reference", collection = "authors" }}, tag = {{ type = "Reference", collection = "tags" }} }}
"""  # noqa: E501

#: Custom fields of the job's three collections, and those that point at a collection created
#: after the one holding them (tags.parent; one of authors.favourite / posts.author).
FIELDS = 3 + 2 + 4
ADDED_AFTER = 2


def setup_requests(stats: dict[str, object]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in stats["endpoints"]:  # type: ignore[attr-defined]
        route = row["route"]
        if row["method"] == "POST" and route == "/v2/sites/{site_id}/collections":
            counts["collection creates"] += row["count"]
        elif row["method"] == "POST" and route == "/v2/collections/{collection_id}/fields":
            counts["field creates"] += row["count"]
        elif row["method"] == "GET" and route == "/v2/collections/{collection_id}":
            counts["schema reads"] += row["count"]
    return counts


async def test_a_first_run_creates_each_collection_with_its_fields_in_one_request(
    sandbox: Sandbox, job_dir: Path, client: WebflowClient
) -> None:
    write_csv(
        job_dir / "authors.csv",
        ["id", "name", "email", "bio", "favourite"],
        [("a1", "Ada", "ada@example.com", "Counts", "p2"), ("a2", "Bo", "", "", "")],
    )
    write_csv(
        job_dir / "tags.csv",
        ["id", "name", "colour", "parent"],
        [("t1", "News", "red", ""), ("t2", "World", "blue", "t1")],
    )
    write_csv(job_dir / "posts.csv", ["id", "title", "body", "words", "author", "tag"],
              [("p1", "First", "<p>Hi</p>", "3", "a1", "t2"),
               ("p2", "Second", "<p>Yo</p>", "5", "a2", "t1")])  # fmt: skip
    path = job_dir / "job.toml"
    path.write_text(JOB.format(base_url=sandbox.base_url, site_id=sandbox.site_id))

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    counts = setup_requests(await sandbox_stats(sandbox))
    print(f"first run's schema setup: {dict(counts)}")
    # One request per collection and one per reference added once its target exists; the
    # schemas are the answers' (no read).
    assert counts == {"collection creates": 3, "field creates": ADDED_AFTER}
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        ids = {name: log.bindings.collection_id(name) for name in ("authors", "tags", "posts")}
        webflow_ids = {
            s.key: s.webflow_id
            for name in ("authors", "tags", "posts")
            for s in log.in_state(name, "done")
        }
    custom = 0
    for name, collection_id in ids.items():
        assert collection_id
        schema = await client.get_collection(collection_id)
        custom += len(schema.fields) - 2
        if name == "tags":
            parent = schema.field("parent")
            assert parent is not None
            assert parent.referenced_collection_id == collection_id
    assert custom == FIELDS
    # The references were set, the deferred ones included.
    posts = {i.id: i async for i in client.iter_items(ids["posts"] or "")}
    tags = {i.id: i async for i in client.iter_items(ids["tags"] or "")}
    authors = {i.id: i async for i in client.iter_items(ids["authors"] or "")}
    assert tags[webflow_ids["t2"] or ""].field_data["parent"] == webflow_ids["t1"]
    assert posts[webflow_ids["p1"] or ""].field_data["author"] == webflow_ids["a1"]
    assert authors[webflow_ids["a1"] or ""].field_data["favourite"] == webflow_ids["p2"]
