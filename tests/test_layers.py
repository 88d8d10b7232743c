"""The import graph of the project's own modules: no cycle, no project import hidden
inside a function, and every import points down the layers
`wordspace` -> `service`, `analysis` -> `embeddings`."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wordspace", "service", "analysis", "embeddings")
#: What each package may import besides itself.
ALLOWED = {
    "wordspace": {"service", "analysis", "embeddings"},
    "service": {"embeddings"},
    "analysis": {"embeddings"},
    "embeddings": set(),
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


MODULES = project_modules()


def resolve(name: str) -> str | None:
    """The project module `name` refers to (a module, or the module holding that attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> list[tuple[str, bool, int]]:
    """(imported project module, inside a function?, line) for every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    in_function = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(fn)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = resolve(target)
            if resolved is not None and resolved != module:
                found.append((resolved, id(node) in in_function, node.lineno))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_the_checker_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_covers_the_project():
    assert {"wordspace.cli", "wordspace.api", "service.app", "analysis.analogy", "embeddings.query",
            "embeddings.index", "embeddings.vectors"} <= set(MODULES)
    assert ("embeddings.query", False) in {(m, f) for m, f, _ in GRAPH["service.routes_queries"]}


def test_no_import_cycle():
    graph = {module: {target for target, _, _ in edges} for module, edges in GRAPH.items()}
    assert cycles(graph) == []


def test_no_project_import_inside_a_function():
    hidden = [f"{module}:{line} imports {target}" for module, edges in GRAPH.items()
              for target, inside, line in edges if inside]
    assert hidden == []


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_layers(package):
    wrong = [f"{module}:{line} imports {target}" for module, edges in GRAPH.items()
             if module.split(".")[0] == package
             for target, _, line in edges
             if target.split(".")[0] not in ALLOWED[package] | {package}]
    assert wrong == []


def test_nothing_in_the_core_knows_http_or_argparse():
    for module, path in MODULES.items():
        if module.startswith("embeddings"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {alias.name.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, (ast.Import, ast.ImportFrom))
                     for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
            assert not names & {"flask", "werkzeug", "waitress", "argparse"}, module
