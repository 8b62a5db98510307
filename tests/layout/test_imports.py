"""The layout, read from the imports: no cycle between modules or between packages, and the
product (``upgrader``) never imports its lab or its benchmarks.

Every import counts, also those inside functions (a lazy import is still a dependency)
and those only for type checking.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "upgrader"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from X import name`` counts X.name when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (use absolute imports)"
            base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the product's modules it imports."""
    modules = {module_name(p): p for p in PRODUCT.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def package_of(module: str) -> str:
    """``upgrader.guard.hook`` -> ``guard``; a top-level module (``upgrader.runner``) is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one node (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_back_a_module_that_imports_it() -> None:
    modules = graph()
    # A package's __init__ that re-exports its own modules is part of the package, not a cycle.
    edges = {m: {d for d in deps if not (m == d.rsplit(".", 1)[0] and PRODUCT.joinpath(*m.split(".")[1:]).is_dir())}
             for m, deps in modules.items()}
    edges = {m: {d for d in deps if not (d == m.rsplit(".", 1)[0])} for m, deps in edges.items()}
    assert cycles(edges) == []
    assert len(modules) > 60  # it did read the product


def test_no_package_imports_back_a_package_that_imports_it() -> None:
    packages: dict[str, set[str]] = {}
    for module, deps in graph().items():
        packages.setdefault(package_of(module), set()).update(
            package_of(d) for d in deps if package_of(d) != package_of(module))
    assert cycles(packages) == []


def test_the_product_never_imports_its_lab_or_its_benchmarks() -> None:
    found = sorted(f"{module_name(p)} imports {m}" for p in PRODUCT.rglob("*.py") for m in imports(p)
                   if m.split(".")[0] in ("upgrader_lab", "upgrader_bench", "tests"))
    assert found == []


def test_the_lab_and_the_benchmarks_are_not_installed_with_the_product() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["options.packages.find"]["include"].split() == ["upgrader", "upgrader.*"]
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "upgrader_lab" not in scripts and "upgrader_bench" not in scripts, scripts
