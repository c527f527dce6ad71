"""The dependency lists, held by tests: every runtime dependency in pyproject.toml is used by the
product, and requirements/lock.txt (what README and CI install from) pins every requirement of
pyproject.toml, its extras included, to a version the range admits.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
#: The folders that install as the `flowport` package (see tests/test_import_graph.py).
PACKAGE_FOLDERS = ("flowport", "pipeline", "connectors", "mappings")

#: Runtime dependencies the product uses without importing them by name.
INDIRECT_USES = {
    # SQLAlchemy dialect drivers, loaded by the URL's driver name (connectors/sql.py maps
    # sqlite/postgresql/mysql URLs to sqlite+aiosqlite, postgresql+asyncpg, mysql+aiomysql).
    "aiosqlite",
    "asyncpg",
    "aiomysql",
    # zoneinfo's data where the operating system has no tz database (slim containers, Windows).
    "tzdata",
}


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(text) for text in project["dependencies"]]


def every_requirement() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    return runtime_requirements() + [
        Requirement(text) for texts in extras.values() for text in texts
    ]


def imported_top_level_names(folders: Iterable[Path]) -> set[str]:
    """Top-level names of every absolute import in the product's code, however deep in a
    function it stands (a lazy import is still a use)."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.partition(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.partition(".")[0])
    return names


def unused_dependencies(
    requirements: Iterable[Requirement],
    imported: set[str],
    providers: Mapping[str, list[str]],
    allowed: set[str],
) -> set[str]:
    """The requirements none of whose import names is imported and that are not allowed as an
    indirect use. `providers` maps an import name to the distributions that provide it, as
    importlib.metadata.packages_distributions() does."""
    used = {
        canonicalize_name(distribution)
        for name in imported
        for distribution in providers.get(name, [])
    }
    return {
        canonicalize_name(requirement.name)
        for requirement in requirements
        if canonicalize_name(requirement.name) not in used | allowed
    }


def locked_versions() -> dict[str, list[str]]:
    """Name -> pinned versions of the lock's lines whose marker holds here (a universal lock
    may pin one package twice, for different Python versions)."""
    pins: dict[str, list[str]] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        requirement, _, marker = line.partition("#")[0].partition(";")
        if not requirement.strip() or requirement.lstrip().startswith("-"):
            continue
        if marker.strip() and not Marker(marker).evaluate():
            continue
        name, _, version = requirement.partition("==")
        assert version, f"not a pin: {line!r}"
        pins.setdefault(canonicalize_name(name.strip()), []).append(version.strip())
    return pins


def test_every_runtime_dependency_is_used_by_the_product() -> None:
    imported = imported_top_level_names(ROOT / folder for folder in PACKAGE_FOLDERS)
    unused = unused_dependencies(
        runtime_requirements(), imported, packages_distributions(), INDIRECT_USES
    )
    assert unused == set(), "neither imported by flowport nor an indirect use listed here"


def test_the_indirect_uses_are_still_runtime_dependencies() -> None:
    declared = {canonicalize_name(requirement.name) for requirement in runtime_requirements()}
    assert INDIRECT_USES - declared == set()


def test_the_unused_check_sees_an_unused_dependency(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text(
        "import lxml.etree\nfrom slugify import slugify\n\ndef later():\n    import orjson\n",
        encoding="utf-8",
    )
    imported = imported_top_level_names([tmp_path])
    assert imported == {"lxml", "slugify", "orjson"}
    providers = {"lxml": ["lxml"], "slugify": ["python-slugify"], "orjson": ["orjson"]}
    requirements = [Requirement(t) for t in ("lxml>=5", "python_slugify>=8", "orjson", "nh3")]
    assert unused_dependencies(requirements, imported, providers, set()) == {"nh3"}
    assert unused_dependencies(requirements, imported, providers, {"nh3"}) == set()


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    pins = locked_versions()
    wrong = [
        f"{requirement}: locked {pins.get(canonicalize_name(requirement.name))}"
        for requirement in every_requirement()
        if requirement.marker is None or requirement.marker.evaluate()
        if not any(
            requirement.specifier.contains(version, prereleases=True)
            for version in pins.get(canonicalize_name(requirement.name), [])
        )
    ]
    assert wrong == [], "refresh the lock: .ci/refresh-lock"
