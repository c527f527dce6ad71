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


#: Modules held to the size target: no function over 60 lines or McCabe complexity over 15.
SIZED_MODULES = (
    "pipeline/writer.py",
    "pipeline/checkpoint.py",
    "pipeline/webflow/reliable.py",
    "pipeline/retry.py",
    "pipeline/ratebudget.py",
)
MAX_FUNCTION_LINES = 60
MAX_COMPLEXITY = 15


def function_lengths(path: Path) -> dict[str, int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        f"{path.name}:{node.lineno} {node.name}": (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


@pytest.mark.parametrize("module", SIZED_MODULES)
def test_no_function_over_the_size_target(module: str) -> None:
    lengths = function_lengths(ROOT / module)
    assert lengths, f"{module} has no function: is the list of sized modules stale?"
    assert {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES} == {}
    result = subprocess.run(
        [
            str(BIN / "ruff"),
            "check",
            "--select",
            "C901",
            "--config",
            f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            module,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
