"""The README's library example runs as written: its job file and its script, twice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else None]


def code_block(text: str, language: str) -> str:
    (block,) = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    return str(block)


@pytest.mark.slow
def test_the_dataframe_example_creates_its_items_and_a_rerun_sends_nothing(
    tmp_path: Path,
) -> None:
    readme = section("DataFrame source")
    job = code_block(readme, "toml")
    job_path = job.splitlines()[0].removeprefix("# ")
    assert job_path == "runs/products.toml"
    (tmp_path / "runs").mkdir()
    (tmp_path / job_path).write_text(job, encoding="utf-8")
    script = tmp_path / "example.py"
    script.write_text(code_block(readme, "python"), encoding="utf-8")

    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip())
    assert outputs == ["{'products': {'created': 3}}", "{'products': {'unchanged': 3}}"]


def library_examples() -> list[tuple[str, str]]:
    """Each ```python block of "Library use" before its subsections, with the ```text block
    under it: what it prints."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Library use\n")
    end = text.index("\n### ", start)
    pairs = re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", text[start:end], re.DOTALL)
    return [(str(code), str(output)) for code, output in pairs]


def test_the_library_section_has_examples_with_their_output() -> None:
    examples = library_examples()
    assert len(examples) == 2
    assert all(code.strip() and output.strip() for code, output in examples)


@pytest.mark.parametrize("number", range(2))
def test_a_library_example_prints_what_the_readme_says(tmp_path: Path, number: int) -> None:
    code, expected = library_examples()[number]
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    assert result.stderr == ""
