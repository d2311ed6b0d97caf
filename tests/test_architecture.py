"""The package has no import circle: every `import` of an xlcore module inside xlcore, at module level or
inside a function, is an edge, and the graph must be acyclic (a circle means no file in it can be read,
tested or changed without the others)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (all imports, function-level ones included)."""
    modules: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{alias.name}" for alias in node.names] + [source]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:  # `from pkg import name`: the module or pkg
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
                    break
    return graph


def import_cycles(package: Path) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph, index, low, stack, on_stack, found = import_graph(package), {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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


def test_xlcore_has_no_import_cycle():
    cycles = import_cycles(REPO / "xlcore")
    assert not cycles, "import cycles in xlcore (break each by moving the shared piece below both sides): " + \
        "; ".join(" <-> ".join(c) for c in cycles)


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    """A lazy import inside a function is still a dependency: the check sees it."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub.b import thing\n")
    (package / "sub" / "b.py").write_text(textwrap.dedent("""
        def thing():
            from ..a import thing as again  # the circle's second half, out of sight at import time
            return again
    """))
    (package / "c.py").write_text("from . import a\n")
    assert import_cycles(package) == [["pkg.a", "pkg.sub.b"]]


# The layers of docs/architecture.md, top (imported by everything below) to bottom (imports everything).
LAYERS = [
    {"errors", "config", "contract", "registry", "results", "provenance", "plotting"},
    {"world", "data"},
    {"distributed", "train", "losses"},
    {"backbone", "cache"},
    {"methods"},
    {"experiment", "evaluate"},
    {"settings", "cell", "notebooks", "sweep"},
    {"study", "report", "analysis", "claims", "serving", "prompts", "docs"},
    {"cli", "__main__"},
]
# Documented there: the toy backbone's quality bar reuses the retrieval and compositional metrics; the data
# file's evaluation section builds prompt and retrieval sets. Both import inside the function needing them.
ALLOWED_UPWARD = {("xlcore.backbone.quality", "xlcore.evaluate"), ("xlcore.data.datafile", "xlcore.evaluate")}


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_module_imports_only_from_its_layer_or_those_above():
    graph = import_graph(REPO / "xlcore")
    wrong = []
    for module, targets in graph.items():
        if module == "xlcore":
            continue
        for target in targets:
            allowed = any(module == a and target.startswith(b) for a, b in ALLOWED_UPWARD)
            if layer_of(target) > layer_of(module) and not allowed:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports from a lower layer (docs/architecture.md, Layers): " + ", ".join(sorted(wrong))
