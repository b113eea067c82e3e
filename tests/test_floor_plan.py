"""The floor plan that docs/ARCHITECTURE.md describes, kept true: packages instead of loose modules, no import
circles between modules, no module past about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("backend", "ui")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: dict[str, Path], lazy: bool = True) -> set[str]:
    """The project modules a module imports, at the top and (`lazy`) inside functions, except under
    `if TYPE_CHECKING:` (annotations only)."""
    targets: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets.add(node.module)
            targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return {name for name in targets if name in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph(lazy: bool = True, within: str = "") -> dict[str, set[str]]:
    modules = {name: path for name, path in _modules().items() if name.startswith(within)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # A package's __init__ importing its own submodules is not a circle between modules.
        graph[name] = {t for t in _imports(path, modules, lazy)
                       if t != name and not (path.name == "__init__.py" and t.startswith(name + "."))}
    return graph


def test_no_import_circles_between_modules() -> None:
    """No circle among the imports a module makes when it is imported."""
    assert _cycles(_graph(lazy=False)) == []


def test_no_import_circles_even_through_imports_inside_functions() -> None:
    """No circle at all, counting the imports inside functions across floors too. An import inside a function keeps
    a library (torch) from loading at start-up; it is not a way for a lower floor to reach a higher one: what a
    lower floor needs lives on its floor (text checks in backend/guard/, checkpoint files in backend/core/), and
    what it must call above is handed to it by whoever composes the app (the registry's engine factory)."""
    assert _cycles(_graph(lazy=True)) == []


def test_no_import_circles_inside_a_package() -> None:
    """Inside one package: a circle there is two modules that should be one or three (named by package, so a
    failure says where to look)."""
    for package in ("backend.engines.", "backend.api.", "backend.tasks.", "backend.training.", "backend.core.",
                    "ui.chat.", "ui.common."):
        assert _cycles(_graph(within=package)) == [], package


def test_the_circle_check_finds_a_circle() -> None:
    graph = _graph()
    graph["backend.core.types"] = graph["backend.core.types"] | {"backend.core.registry"}
    assert any("backend.core.types" in cycle for cycle in _cycles(graph))


def test_backend_and_ui_have_no_loose_modules() -> None:
    for package in PACKAGES:
        loose = sorted(p.name for p in (ROOT / package).glob("*.py") if p.name != "__init__.py")
        assert loose == [], f"{package}/ has loose modules; put each in the package of its floor: {loose}"


def test_no_module_outgrows_one_job() -> None:
    long = {str(path.relative_to(ROOT)): n for path in _modules().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these by concern (at most {MAX_LINES} lines): {long}"
