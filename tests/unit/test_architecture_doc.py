"""docs/architecture.md against the package: its module map lists every module, and what it names exists.

Modules are found by walking ``cerebro_spark/`` (nothing is imported, so neither Spark nor TensorFlow is
needed): every ``.py`` file of a package is a module, and a package is listed by its own name (its
``__init__.py``). Adding, removing or renaming a module without updating the doc fails these tests.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cerebro_spark"
DOC = ROOT / "docs" / "architecture.md"
MAP_HEADING = "## 1. Module map"

#: A name the doc may give in backticks: a dotted module path, maybe with attributes or ``:function``.
NAME = re.compile(r"cerebro_spark(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?")
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
ROW = re.compile(r"^\|(?P<first>[^|]*)\|(?P<second>[^|]*)\|")


def package_modules() -> set[str]:
    """Every module of the package as a dotted name; a package is its folder's name (``__init__.py``)."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        if not _in_package(path):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def _in_package(path: Path) -> bool:
    """Whether every folder from ``cerebro_spark/`` down to ``path`` is a package (has ``__init__.py``)."""
    folder = path.parent
    while True:
        if not (folder / "__init__.py").is_file():
            return False
        if folder == PACKAGE:
            return True
        folder = folder.parent


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def module_map() -> str:
    """The text of the module map section: from its heading to the next section."""
    text = doc_text()
    assert MAP_HEADING in text, f"docs/architecture.md has no section headed {MAP_HEADING!r}"
    section = text.split(MAP_HEADING, 1)[1]
    return section.split("\n## ", 1)[0]


def map_rows() -> list[tuple[str, str]]:
    """(module, description) of every table row of the map whose first cell is a backticked name."""
    rows = []
    for line in module_map().splitlines():
        match = ROW.match(line.strip())
        if match is None:
            continue
        first = match["first"].strip()
        if first.startswith("`") and first.endswith("`") and NAME.fullmatch(first[1:-1]):
            rows.append((first[1:-1], match["second"].strip()))
    return rows


def named_in_doc() -> set[str]:
    """Every backticked ``cerebro_spark...`` name of the doc, outside fenced code blocks."""
    prose = FENCE.sub("", doc_text())
    return {span for span in SPAN.findall(prose) if NAME.fullmatch(span)}


def source_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@cache
def defined_names(module: str) -> dict[str, set[str]]:
    """The names bound at the top level of ``module`` (defs, classes, assignments, imports), each with
    the names bound in its body when it is a class."""
    tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        for name in _bound(node):
            names.setdefault(name, set())
        if isinstance(node, ast.ClassDef):
            names[node.name] = {name for child in node.body for name in _bound(child)}
    return names


def _bound(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    return []


def resolves(name: str) -> bool:
    """Whether ``name`` is a module of the package, or a name defined in one (``module.Class.method``,
    ``module:function``)."""
    modules = package_modules()
    dotted, _, function = name.partition(":")
    if function:
        return dotted in modules and function in defined_names(dotted)
    if dotted in modules:
        return True
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in modules:
            attributes = parts[cut:]
            found = defined_names(module)
            if attributes[0] not in found:
                return False
            return len(attributes) == 1 or (len(attributes) == 2 and attributes[1] in found[attributes[0]])
    return False


# ---- the tests -------------------------------------------------------------------------------------------


def test_the_walk_finds_the_package_modules():
    """The checks below would pass vacuously if the walk found nothing: it finds packages and modules."""
    modules = package_modules()
    assert {"cerebro_spark", "cerebro_spark.driver", "cerebro_spark.driver.loop"} <= modules
    assert "cerebro_spark.training.__init__" not in modules
    assert len(modules) > 50


def test_module_map_lists_every_module():
    listed = {module for module, _ in map_rows()}
    missing = sorted(package_modules() - listed)
    assert not missing, (
        f"The module map of docs/architecture.md ({MAP_HEADING!r}) lacks {len(missing)} module(s) of "
        f"cerebro_spark: {missing}. Add a row `| `module` | what it does |` for each."
    )


def test_module_map_lists_only_existing_modules():
    listed = {module for module, _ in map_rows()}
    unknown = sorted(listed - package_modules())
    assert not unknown, (
        f"The module map of docs/architecture.md lists {unknown}, which are not modules of cerebro_spark "
        "(removed or renamed?). Remove or rename their rows."
    )


def test_module_map_has_one_described_row_per_module():
    rows = map_rows()
    counts = Counter(module for module, _ in rows)
    duplicated = sorted(module for module, count in counts.items() if count > 1)
    undescribed = sorted(module for module, description in rows if not description)
    assert not duplicated, f"The module map of docs/architecture.md lists these modules twice: {duplicated}"
    assert not undescribed, (
        f"The module map of docs/architecture.md does not say what these do: {undescribed}"
    )


def test_every_name_in_the_doc_exists():
    unresolved = sorted(name for name in named_in_doc() if not resolves(name))
    assert not unresolved, (
        "docs/architecture.md names these as `cerebro_spark...`, but no such module (or name defined in "
        f"a module) exists: {unresolved}"
    )
