"""The typing and lint standards, checked by the test run so CI enforces them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Where each folder of the repository is installed in the `flowport` namespace.
NAMESPACE = {"pipeline": "pipeline", "connectors": "connectors", "mappings": "mappings"}


def flowport_tree(where: Path) -> Path:
    """The `flowport` package as it is installed (flowport/ with pipeline/, connectors/ and
    mappings/ inside), built of symbolic links to the working tree: mypy resolves imports by
    folders, and cannot follow setuptools' package-dir mapping of an editable install."""
    package = where / "flowport"
    package.mkdir()
    for entry in (ROOT / "flowport").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder, name in NAMESPACE.items():
        (package / name).symlink_to(ROOT / folder, target_is_directory=True)
    return package


def mypy(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_mypy_strict_on_the_flowport_package(tmp_path: Path) -> None:
    flowport_tree(tmp_path)
    result = mypy(
        ["--cache-dir", str(ROOT / ".mypy_cache" / "flowport"), "-p", "flowport"], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_on_the_tests_and_benchmarks(tmp_path: Path) -> None:
    """The relaxed profile of pyproject's ``tests.*`` override; tests import ``flowport`` as it
    is installed and ``tests.…`` as a package, so both sit side by side in the tree."""
    flowport_tree(tmp_path)
    for folder in ("tests", "benchmarks"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    cache = ROOT / ".mypy_cache" / "tests"
    result = mypy(["--cache-dir", str(cache), "tests", "benchmarks"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


#: Mistakes the relaxed profile must still catch, in a test function left unannotated.
_PROBE = """
from flowport.pipeline.sandbox import Sandbox, SandboxSettings
from flowport.pipeline.sandbox.cli import read_tokens
import flowport.pipeline.no_such_module


def test_probe(sandbox, tmp_path):
    tokens = read_tokens(tmp_path, tmp_path)
    tokens.count_all()
    sandbox.anything_goes
"""


@pytest.mark.slow
def test_the_relaxed_profile_still_catches_names_arities_and_imports(tmp_path: Path) -> None:
    flowport_tree(tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_probe.py").write_text(_PROBE)
    cache = ROOT / ".mypy_cache" / "probe"
    result = mypy(["--cache-dir", str(cache), "tests"], tmp_path)
    found = {
        (int(line.split(":")[1]), line.rpartition("[")[2].rstrip("]"))
        for line in result.stdout.splitlines()
        if line.startswith("tests/test_probe.py:") and ": error:" in line
    }
    # An unannotated fixture argument is Any (line 10 passes): what mypy can know is held.
    assert found == {(2, "attr-defined"), (4, "import-not-found"), (8, "call-arg"),
                     (9, "attr-defined")}, result.stdout  # fmt: skip


def test_ruff_lint() -> None:
    result = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "flowport",
            "pipeline",
            "connectors",
            "mappings",
            "tests",
            "benchmarks",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


#: Folders held to the engine's size target (no function over 60 lines or McCabe 15); more
#: join as they are brought under it.
SIZE_TARGET_FOLDERS = ("pipeline/sandbox",)
#: Modules held to it on their own.
SIZE_TARGET_MODULES = (
    "pipeline/writer.py",
    "pipeline/checkpoint.py",
    "pipeline/webflow/reliable.py",
    "pipeline/retry.py",
    "pipeline/ratebudget.py",
)
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15


def test_functions_meet_the_size_target() -> None:
    paths = [
        *(path for folder in SIZE_TARGET_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))),
        *(ROOT / module for module in SIZE_TARGET_MODULES),
    ]
    too_long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for path in paths
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert too_long == []
    complexity = subprocess.run(
        [
            str(BIN / "ruff"), "check", "--select", "C901", "--output-format", "concise",
            "--config", f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            *SIZE_TARGET_FOLDERS, *SIZE_TARGET_MODULES,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert complexity.returncode == 0, complexity.stdout + complexity.stderr
