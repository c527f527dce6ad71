"""The house's shape, held by tests: one `flowport` namespace, layers whose arrows point down,
no import cycle, and nothing but `flowport` at the top of an installed wheel.

Layers, lowest first: ``flowport.base`` (errors, Webflow models); ``flowport.connectors``;
``flowport.mappings`` (which may read a connector's record type); ``flowport.pipeline`` (the
engine); the ``flowport`` facade. A module may import from its own layer or lower ones only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Each folder of the repository and the package it installs as.
FOLDERS = {
    "flowport": "flowport",
    "pipeline": "flowport.pipeline",
    "connectors": "flowport.connectors",
    "mappings": "flowport.mappings",
}
LAYERS = [
    "flowport.base",
    "flowport.connectors",
    "flowport.mappings",
    "flowport.pipeline",
    "flowport",
]


def modules() -> dict[str, Path]:
    """Every module of the namespace, by its installed name."""
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def layer(module: str) -> int:
    """The layer of the most specific prefix that names the module."""
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS.index(max(matches, key=len))


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at run time) for every import of a flowport module, however
    deep in a function it stands; names imported from a package count as its modules."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            guarded.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        runtime = id(node) not in guarded
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flowport"):
                    yield alias.name, node.lineno, runtime
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("flowport"):
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}"
                yield (child if child in known else target), node.lineno, runtime


def test_every_package_folder_is_installed_under_flowport() -> None:
    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert declared == on_disk


def test_layers_point_down() -> None:
    found = modules()
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module} ({LAYERS[layer(module)]}) imports {target}"
        for module, path in found.items()
        for target, line, _runtime in imports(module, path, set(found))
        if layer(target) > layer(module)
    ]
    assert wrong == []


def test_no_import_cycle() -> None:
    """Between modules, counting imports inside functions too (only TYPE_CHECKING is free)."""
    found = modules()
    graph = {
        module: {
            t for t, _, runtime in imports(module, path, set(found)) if runtime and t != module
        }
        for module, path in found.items()
    }
    # A package's __init__ importing its own submodules is how a package re-exports: not a cycle
    # unless a submodule imports the package back, which the walk below still sees.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_graph_check_sees_a_bad_import(tmp_path: Path) -> None:
    """The checks above can fail: a base module importing the engine is seen."""
    bad = tmp_path / "errors.py"
    bad.write_text("from flowport.pipeline.runner import run_job\n", encoding="utf-8")
    found = list(imports("flowport.base.errors", bad, {"flowport.pipeline.runner"}))
    assert found == [("flowport.pipeline.runner", 1, True)]
    assert layer("flowport.pipeline.runner") > layer("flowport.base.errors")


@pytest.mark.slow
def test_a_built_wheel_installs_only_flowport(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("flowport-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {
        name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")
    }
    assert top == {"flowport"}
    for module in (
        "flowport/pipeline/runner.py",
        "flowport/connectors/wxr.py",
        "flowport/py.typed",
    ):
        assert module in names
    assert not any(name.startswith("flowport/tests") for name in names)
