"""The package's folders are its layers, and imports go downward only.

data → spec and pk (declarations, pure kernels) → graphs (PyMC models) → inference →
decisions → studies → interfaces (CLI, app, report). A module may import modules of its own
layer and of the layers before it, never of a later one; this holds for imports inside
functions too (a lazy import is still a dependency). The cross-cutting top-level modules
(``errors``, ``provenance``, ``_lazy``, ``_version``) import nothing of the package's layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asuc_bayes"
#: Rank of each layer (equal ranks may import each other).
LAYERS = {
    "": 0,  # errors, provenance, _lazy, _version
    "data": 1,
    "spec": 2,
    "pk": 2,
    "graphs": 3,
    "inference": 4,
    "decisions": 5,
    "studies": 6,
    "interfaces": 7,
}
#: The package's entry points may reach every layer (lazily): the public API and ``-m``.
ENTRY_POINTS = {"asuc_bayes/__init__.py", "asuc_bayes/__main__.py"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "asuc_bayes" or len(parts) == 1:
        return ""
    return parts[1] if parts[1] in LAYERS else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "asuc_bayes":
                found += [(node.lineno, f"asuc_bayes.{a.name}") for a in node.names]
            elif node.module.startswith("asuc_bayes."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("asuc_bayes.")]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_downward_only(path):
    name = str(path.relative_to(PACKAGE.parent))
    if name in ENTRY_POINTS:
        return
    own = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    own_rank = LAYERS[_layer(own)]
    upward = [
        f"line {line}: {module} (layer {_layer(module) or 'top'})"
        for line, module in _imports(path)
        if LAYERS[_layer(module)] > own_rank
    ]
    assert not upward, f"{name} (layer {_layer(own) or 'top'}) imports upward: {upward}"


def test_every_layer_folder_exists():
    for layer in LAYERS:
        if layer:
            assert (PACKAGE / layer / "__init__.py").is_file(), layer
