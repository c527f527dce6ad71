"""Localized collections: each locale gets its own values, counted toward the 100-item limit."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flowport.base.errors import ConfigError
from flowport.pipeline.checkpoint import CheckpointLog
from flowport.pipeline.jobfile import load_job
from flowport.pipeline.runner import run_job
from flowport.pipeline.sandbox import Sandbox
from flowport.pipeline.webflow.client import WebflowClient
from tests.conftest import TOKEN, UNLIMITED_RATE
from tests.engine.conftest import sandbox_stats

JOB = """
[destination]
api = "{base_url}"
site_id = "{site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[run]
mode = "live"

[collections.products]
target = "Products"
create_missing = true
source = {{ type = "csv", path = "products.csv", key = "sku" }}
slug_from = "name"

[collections.products.fields]
name = "name_en"
blurb = "blurb_en"
price = {{ source = "price", transforms = ["number"] }}

[collections.products.locales.{tag}]
name = "name_fr"
blurb = "blurb_fr"

[collections.products.schema]
singular_name = "Product"
fields = {{ blurb = "PlainText", price = "Number" }}
"""


def write_products(path: Path, n: int, *, revised: frozenset[int] = frozenset()) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name_en", "name_fr", "blurb_en", "blurb_fr", "price"])
        for i in range(n):
            french = f"Produit {i}" + (" (révisé)" if i in revised else "")
            writer.writerow(
                [
                    f"SKU{i}",
                    f"Product {i}",
                    french,
                    f"A fine thing {i}",
                    f"Une belle chose {i}",
                    str(10 + i),
                ]
            )


@pytest.fixture
def sandbox_settings() -> dict[str, Any]:
    return {"rate_limit": UNLIMITED_RATE, "locales": ("en", "fr-FR")}


async def variants(
    sandbox: Sandbox, collection_id: str, locale_id: str, *, live: bool
) -> dict[str, dict[str, Any]]:
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as client:
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            response = await client.send(
                "GET",
                f"/collections/{collection_id}/items{'/live' if live else ''}",
                params={"cmsLocaleId": locale_id, "offset": offset, "limit": 100},
            )
            page = response.body["items"]
            for item in page:
                found[item["id"]] = item["fieldData"]
            offset += len(page)
            if not page or offset >= response.body["pagination"]["total"]:
                return found


async def test_each_locale_gets_its_own_values_and_reruns_send_only_changes(
    sandbox: Sandbox, job_dir: Path
) -> None:
    site = sandbox.core.get_site(sandbox.site_id)
    english = site["locales"]["primary"]["cmsLocaleId"]
    french = site["locales"]["secondary"][0]["cmsLocaleId"]
    path = job_dir / "job.toml"
    path.write_text(JOB.format(base_url=sandbox.base_url, site_id=sandbox.site_id, tag="fr-FR"))
    write_products(job_dir / "products.csv", 120)

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    assert summary.collections["products"]["created"] == 120
    assert summary.collections["products"]["published"] == 120
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        collection_id = log.bindings.collection_id("products")
        assert log.counts()["products"] == {"done": 120}
    assert collection_id
    live_en = await variants(sandbox, collection_id, english, live=True)
    live_fr = await variants(sandbox, collection_id, french, live=True)
    assert len(live_en) == len(live_fr) == 120
    assert set(live_en) == set(live_fr)
    for item_id, data in live_en.items():
        number = data["name"].removeprefix("Product ")
        assert live_fr[item_id]["name"] == f"Produit {number}"
        assert live_fr[item_id]["blurb"] == f"Une belle chose {number}"
        assert live_fr[item_id]["price"] == data["price"]  # not localized: the primary's value
        assert live_fr[item_id]["slug"] == data["slug"]

    writes_before = sandbox.stats()["totals"]["writes"]
    again = await run_job(load_job(path))
    assert again.collections == {"products": {"unchanged": 120}}
    assert sandbox.stats()["totals"]["writes"] == writes_before

    write_products(job_dir / "products.csv", 120, revised=frozenset({3, 77}))
    changed = await run_job(load_job(path))
    assert changed.collections["products"]["updated"] == 2
    assert changed.collections["products"]["unchanged"] == 118
    # One PATCH with both locales of both items, one publish.
    assert (await sandbox_stats(sandbox))["totals"]["writes"] == writes_before + 2
    live_fr = await variants(sandbox, collection_id, french, live=True)
    assert sorted(d["name"] for d in live_fr.values() if "révisé" in d["name"]) == [
        "Produit 3 (révisé)",
        "Produit 77 (révisé)",
    ]


async def test_a_locale_the_site_lacks_is_a_clear_job_error(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(JOB.format(base_url=sandbox.base_url, site_id=sandbox.site_id, tag="de-DE"))
    write_products(job_dir / "products.csv", 3)
    with pytest.raises(ConfigError) as raised:
        await run_job(load_job(path))
    assert raised.value.key == "collections.products.locales.de-DE"
    assert "fr-fr" in str(raised.value)
    assert sandbox.stats()["totals"]["writes"] == 0


async def test_an_editors_change_to_a_localized_item_is_kept_and_merge_writes_the_locale(
    sandbox: Sandbox, job_dir: Path
) -> None:
    site = sandbox.core.get_site(sandbox.site_id)
    english = site["locales"]["primary"]["cmsLocaleId"]
    french = site["locales"]["secondary"][0]["cmsLocaleId"]
    path = job_dir / "job.toml"
    path.write_text(JOB.format(base_url=sandbox.base_url, site_id=sandbox.site_id, tag="fr-FR"))
    write_products(job_dir / "products.csv", 3)
    assert (await run_job(load_job(path))).exit_code == 0
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        collection_id = log.bindings.collection_id("products")
        item_id = log.lookup("products", ["SKU1"])["SKU1"].webflow_id
    assert collection_id
    assert item_id
    # An editor retitles the English item; the source revises the French name of the same one.
    async with WebflowClient(sandbox.base_url, SecretStr(TOKEN)) as editor:
        await editor.update_items(
            collection_id,
            [{"id": item_id, "cmsLocaleId": english, "fieldData": {"name": "Editor's title"}}],
            live=True,
        )
    write_products(job_dir / "products.csv", 3, revised=frozenset({1}))

    reported = await run_job(load_job(path))
    assert reported.collections["products"]["conflicts"] == 1, reported.as_dict()
    assert (await variants(sandbox, collection_id, french, live=False))[item_id]["name"] == (
        "Produit 1"
    )

    merged = await run_job(load_job(path).with_conflicts("merge"))
    assert merged.exit_code == 0, merged.as_dict()
    assert merged.collections["products"]["merged"] == 1
    assert (await variants(sandbox, collection_id, english, live=True))[item_id]["name"] == (
        "Editor's title"
    )
    assert (await variants(sandbox, collection_id, french, live=True))[item_id]["name"] == (
        "Produit 1 (révisé)"
    )
    quiet = await run_job(load_job(path))
    assert quiet.exit_code == 0
    assert quiet.collections["products"]["unchanged"] == 3
    assert "changed_in_webflow_only" not in quiet.collections["products"]


LOCALIZED_BODY_JOB = """
[destination]
api = "{base_url}"
site_id = "{site_id}"
token_env = "FLOWPORT_TEST_TOKEN"
rate_limit = 100000

[collections.pages]
target = "Pages"
create_missing = true
source = {{ type = "csv", path = "pages.csv", key = "id" }}
slug_from = "name"

[collections.pages.fields]
name = "name"
body = {{ source = "body_en", transforms = ["richtext_wordpress"] }}

[collections.pages.locales.fr-FR]
body = {{ source = "body_fr", transforms = ["richtext_wordpress"] }}

[collections.pages.schema]
singular_name = "Page"
fields = {{ body = "RichText" }}
"""


async def test_what_mapping_a_secondary_locale_changed_is_stored_per_item(
    sandbox: Sandbox, job_dir: Path
) -> None:
    path = job_dir / "job.toml"
    path.write_text(LOCALIZED_BODY_JOB.format(base_url=sandbox.base_url, site_id=sandbox.site_id))
    with (job_dir / "pages.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "body_en", "body_fr"])
        # Only the French body holds a table (flattened, with a warning); both hold a <pre>.
        table = "<table><tr><td>Prix</td><td>10</td></tr></table>"
        writer.writerow(["1", "Tarifs", "<pre>x = 1</pre>", f"<pre>x = 1</pre>{table}"])
        writer.writerow(["2", "Plain", "<p>Hello</p>", "<p>Bonjour</p>"])

    summary = await run_job(load_job(path))

    assert summary.exit_code == 0, summary.as_dict()
    with CheckpointLog.open(job_dir / "job" / "checkpoint.sqlite") as log:
        stored = sorted((w.key, w.field, w.kind, w.excerpt) for _, w, _ in log.warnings.all())
    assert [(key, f, kind) for key, f, kind, _ in stored] == [
        ("1", "body", "code_block"),
        ("1", "body", "code_block"),
        ("1", "body", "table_flattened"),
    ]
    french = [excerpt for *_, excerpt in stored if excerpt.startswith("locale fr-FR: ")]
    assert len(french) == 2
    assert summary.collections["pages"]["warning:table_flattened"] == 1
