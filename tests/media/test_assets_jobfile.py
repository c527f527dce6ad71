"""``[assets]`` in the job file: what loads, and each mistake named with its key and a fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowport.pipeline.jobfile import JobFileError, load_job

JOB = textwrap.dedent(
    """
    [destination]
    api = "sandbox"

    {assets}

    [collections.posts]
    source = {{ type = "csv", path = "posts.csv", key = "id" }}
    {base_url}

    [collections.posts.fields]
    name = "title"
    image = "image"
    """
)


def write(tmp_path: Path, assets: str, base_url: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(assets=assets, base_url=base_url))
    return path


def test_the_old_site_defaults_to_the_sources_own_host(tmp_path: Path) -> None:
    job = load_job(
        write(tmp_path, "[assets]\nenabled = true", 'base_url = "https://Old.Example.com/"')
    )
    assert job.assets.hosts == ("old.example.com",)
    assert job.assets.moves("https://old.example.com/wp-content/uploads/a.jpg")
    assert not job.assets.moves("https://cdn.elsewhere.net/a.jpg")
    assert job.assets.on_failure_for("posts", "image") == "keep_url"


def test_hosts_wildcards_ports_and_per_field_policies(tmp_path: Path) -> None:
    assets = textwrap.dedent(
        """
        [assets]
        enabled = true
        hosts = ["*.example.com", "https://media.old.net", "127.0.0.1:8080"]
        on_failure = "skip"
        [assets.fields]
        "posts.image" = { on_failure = "fail" }
        """
    )
    settings = load_job(write(tmp_path, assets)).assets
    assert settings.hosts == ("*.example.com", "media.old.net", "127.0.0.1:8080")
    assert settings.moves("https://cdn.example.com/x.png")
    assert settings.moves("http://example.com/x.png")
    assert settings.moves("https://media.old.net/x.png")
    assert settings.moves("http://127.0.0.1:8080/x.png")
    assert not settings.moves("http://127.0.0.1:9090/x.png")
    assert settings.on_failure_for("posts", "image") == "fail"
    assert settings.on_failure_for("posts", "name") == "skip"


@pytest.mark.parametrize(
    ("assets", "key", "words"),
    [
        ("[assets]\nenabled = true", "assets.hosts", "all_hosts = true"),
        ('[assets]\nhosts = ["not a host"]', "assets.hosts", "old.example.com"),
        ('[assets]\non_failure = "ignore"', "assets.on_failure", "keep_url"),
        ("[assets]\nconcurrency = 0", "assets.concurrency", "greater than or equal to 1"),
        ('[assets.fields]\n"pages.image" = { on_failure = "fail" }', "assets.fields", "posts"),
        ('[assets.fields]\nphoto = { on_failure = "fail" }', "assets.fields", "[collections"),
        ("[assets]\nenable = true", "assets", "enabled"),
    ],
    ids=["no-old-site", "bad-host", "bad-policy", "no-concurrency", "no-collection",
         "no-field", "typo"],
)  # fmt: skip
def test_mistakes_name_the_key_and_a_fix(tmp_path: Path, assets: str, key: str, words: str) -> None:
    with pytest.raises(JobFileError) as caught:
        load_job(write(tmp_path, assets))
    text = str(caught.value)
    assert f": {key}" in text, text
    assert words in text, text
