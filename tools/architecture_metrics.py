"""Measures of the package's shape, for the architecture's before/after notes.

Prints the largest modules (lines of code: no docstrings, comments or blank lines; and all lines), every
import of the package's own modules made inside a function, and the runtime import graph of
``cerebro_spark.ml`` with its cycles (imports under ``TYPE_CHECKING`` only name types and are left out).

Usage: ``python tools/architecture_metrics.py [REPOSITORY_ROOT]`` (default: this checkout).
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
                if isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    skipped = (
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    )
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def own_imports(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) of every import of a ``cerebro_spark`` module."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [(node.lineno, n, id(node) in inside) for n in names if n.startswith("cerebro_spark")]
    return found


def typing_only(tree: ast.AST) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:``."""
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            nodes.update(id(n) for n in ast.walk(node))
    return nodes


def ml_graph(package: Path) -> dict[str, list[str]]:
    """Module of ``ml`` -> the ``ml`` modules it imports when it runs."""
    graph = {}
    for path in sorted((package / "ml").glob("*.py")):
        tree = ast.parse(path.read_text())
        skip = typing_only(tree)
        deps = {
            node.module.split(".")[2]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("cerebro_spark.ml.")
            and id(node) not in skip
        }
        graph[path.stem] = sorted(deps - {path.stem})
    return graph


def cycles(graph: dict[str, list[str]]) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in graph.get(node, []):
            if nxt == start:
                found.add(tuple(sorted(path)))
            elif nxt not in path:
                walk(start, nxt, [*path, nxt])

    for module in graph:
        walk(module, module, [module])
    return found


def main(argv: list[str]) -> None:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    package = root / "cerebro_spark"
    sizes, inner = [], []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text()
        sizes.append((code_lines(source), len(source.splitlines()), str(path.relative_to(root))))
        inner += [
            f"{path.relative_to(root)}:{line} {name}"
            for line, name, nested in own_imports(ast.parse(source))
            if nested
        ]
    print("largest modules (lines of code, all lines):")
    for code, total, name in sorted(sizes)[-10:]:
        print(f"  {code:4d} {total:4d} {name}")
    print(f"imports of the package's own modules inside functions: {len(inner)}")
    for line in inner:
        print(f"  {line}")
    graph = ml_graph(package)
    print("runtime imports inside cerebro_spark.ml:")
    for module, deps in graph.items():
        if deps:
            print(f"  {module} -> {', '.join(deps)}")
    print(f"cycles: {len(cycles(graph))}")


if __name__ == "__main__":
    main(sys.argv)
