"""No import circle inside the operator's or the app's package (issue 12).

The graph is read from the source (ast), not by importing: every ``import`` / ``from ... import``
of a module of the same package counts, at module level or inside a function (a deferred import
hides a circle at import time, not from a reader). Only imports under ``if TYPE_CHECKING:`` are left
out: they never run, so they cannot form a circle at run time (they are how a type-only reference
back is written).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"gong_operator": ROOT / "operator" / "gong_operator", "webhook_app": ROOT / "webhook_app"}


def _modules(package: str, folder: Path) -> dict[str, Path]:
    """Module name -> file, subpackages included (a package is its __init__.py)."""
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            # `from pkg import mod` imports the module pkg.mod when there is one, else a name of pkg.
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` runs a, a.b and a.b.c; the innermost known module is the edge that matters.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def package_cycles(package: str) -> list[list[str]]:
    modules = _modules(package, PACKAGES[package])
    known = set(modules)
    return _cycles({name: _imports(name, path, known) for name, path in modules.items()})


def test_the_graph_reader_finds_a_circle(tmp_path: Path) -> None:
    # The checker itself: a -> b -> a (one deferred), c -> a, and a TYPE_CHECKING-only edge d <-> a.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg import d\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (pkg / "c.py").write_text("from . import a\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    modules = _modules("pkg", pkg)
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.a"] == {"pkg.b"} and graph["pkg.d"] == {"pkg.a"}
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_circle_in_the_operator() -> None:
    assert package_cycles("gong_operator") == []


def test_no_import_circle_in_the_app() -> None:
    assert package_cycles("webhook_app") == []
