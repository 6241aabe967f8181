"""The package's wiring can be seen: layers import only the layers below them, no module imports itself back
through others, and no module is found by a string at run time."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "stream"
# Lowest first; a layer may import only the layers before it. The top-level modules settings, errors and clock
# sit with model (settings reads durations and money through model, model raises errors).
LAYERS = ("errors", "clock", "model", "settings", "rules", "indicators", "detection", "evidence", "sinks", "worker",
          "simulate", "offline", "dev", "console", "cli")


def _imports() -> dict[str, set[str]]:
    """module -> the stream modules it imports, at any depth of the file (imports inside functions count)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {c for c in candidates if c in modules and c != name}
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "stream"


def test_every_layer_imports_only_the_layers_below_it():
    rank = {layer: n for n, layer in enumerate(LAYERS)}
    found = {_layer(m) for m in _imports()} - {"stream"}
    assert found <= set(LAYERS), f"a package that is in no layer: {sorted(found - set(LAYERS))}"
    wrong = sorted(f"{module} imports {target}" for module, targets in _imports().items() for target in targets
                   if _layer(module) != "stream" and _layer(target) != "stream"
                   and rank[_layer(target)] > rank[_layer(module)])
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:        # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_found_by_a_string():
    pattern = re.compile(r"\bimport_module\(|\b__import__\(|importlib\.util\.find_spec\(")
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}" for path in PACKAGE.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"modules looked up by name: {found}"


def test_the_worker_parts_are_handed_over_not_hung_on_the_app():
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}" for path in (PACKAGE / "worker").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bapp\.fundflow_|getattr\(app,", line)]
    assert not found, f"worker parts looked up on the app: {found}"
