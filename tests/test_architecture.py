"""The package's shape: few top-level modules, no import cycles at any depth, layers that import downwards only.

Imports are read from the source (every ``import`` statement, also those inside functions), so an
import deferred for speed still counts: a cycle through it would break as soon as both ends run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "compressflow"
TOP_LEVEL_LIMIT = 6
TENSORFLOW_MODULES = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "ai_edge_litert",
                      "ai_edge_quantizer"}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _imported(path: Path) -> set[str]:
    """Every dotted name an import statement of the file names (``from a import b`` gives ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _own_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module, path in MODULES.items():
        for name in _imported(path):
            target = _own_module(name) if name.startswith("compressflow") else None
            # NOTE: ``from compressflow.cli import parser`` names the package too; a package's own
            # ``__init__`` is not a dependency of its submodule unless that is all that is imported.
            if target and target != module and not module.startswith(target + "."):
                graph.add_edge(module, target)
    return graph


def test_at_most_six_modules_sit_at_the_top_of_the_package():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, f"top-level modules: {top}; group new ones into a sub-package"


def test_no_module_imports_another_that_imports_it_back_at_any_depth():
    cycles = [sorted(group) for group in nx.strongly_connected_components(_import_graph()) if len(group) > 1]
    assert not cycles, "import cycles (each group reaches itself):\n" + "\n".join(map(str, cycles))


@pytest.mark.parametrize("package", ["dsl", "executor", "cache", "runs", "cli"])
def test_the_core_never_imports_tensorflow(package):
    """Validation, planning, a cached run and the command line stay fast: no TensorFlow, even inside a function."""
    offenders = {module: sorted(name for name in _imported(MODULES[module]) if name.split(".")[0] in TENSORFLOW_MODULES)
                 for module in MODULES if module.startswith(f"compressflow.{package}")}
    assert not {module: names for module, names in offenders.items() if names}


@pytest.mark.parametrize("lower, higher", [
    ("cache", "executor"), ("cache", "dsl"), ("cache", "runs"), ("cache", "cli"), ("cache", "stages"),
    ("dsl", "executor"), ("dsl", "cache"), ("dsl", "runs"), ("dsl", "cli"),
    ("executor", "runs"), ("executor", "cli"), ("runs", "cli"), ("api", "cli"),
    ("stages", "executor"), ("stages", "cli"),
])
def test_layers_import_downwards_only(lower, higher):
    """The direction of design.md: cli -> api -> runs -> executor -> {cache, dsl, stages}; never back."""
    graph = _import_graph()
    upward = sorted((a, b) for a, b in graph.edges
                    if a.startswith(f"compressflow.{lower}") and b.startswith(f"compressflow.{higher}"))
    assert not upward, f"{lower} must not import {higher}: {upward}"
