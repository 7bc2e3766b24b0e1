"""The package's layers, read from its source (ast, nothing is imported): no
module imports a higher layer, and there is no import cycle.

LAYERS is the one written order, bottom first; docs/architecture.md explains it.
Each entry names top-level modules or packages of `unlearn`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

LAYERS: list[tuple[str, ...]] = [
    ("_core",),  # request types and their validation, option checks, stage timing
    ("_C", "ops"),  # the native ops: declarations, twins, compiled kernels
    ("stats", "units", "taps", "curvature", "distributed"),  # statistics and network helpers
    ("data", "models", "training", "ensemble", "mnemonic_codes"),  # data, architectures, training
    ("methods",),  # unlearning methods and their registry
    ("evaluation", "compare", "audit", "demo"),  # scoring and experiments
    ("cli", "__main__", "__init__"),  # the command line and the package's front door
]

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "unlearn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every Python module of the package, and the compiled extension (no source)."""
    modules = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    return {**modules, "unlearn._C": None}


def _imports(name: str, path: Path | None, known: set[str]) -> set[str]:
    """Modules of the package that `name` imports anywhere in its source."""
    if path is None:
        return set()
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                module = _resolve(name, is_package, "." * node.level + (node.module or ""))
            else:
                module = node.module or ""
            # `from package import submodule` imports the submodule.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        elif _is_import_module_call(node):
            module = node.args[0].value
            targets = [module if not module.startswith(".") else _resolve(name, is_package, module)]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _is_import_module_call(node: ast.AST) -> bool:
    """`importlib.import_module("...")` or `import_module("...")` with a constant name."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return called == "import_module" and isinstance(node.args[0].value, str)


def _resolve(name: str, is_package: bool, relative: str) -> str:
    """The absolute name of a relative module name such as "..ops" seen from module `name`."""
    level = len(relative) - len(relative.lstrip("."))
    base = name.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join(base + ([relative[level:]] if relative[level:] else []))


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for index, names in enumerate(LAYERS):
        if top in names or (top == "__main__" and "__main__" in names):
            return index
    raise AssertionError(f"{module} belongs to no layer: add {top!r} to LAYERS")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        _layer(module)


def test_no_module_imports_a_higher_layer(graph):
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in graph.items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_the_package_has_no_import_cycle(graph):
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module) :] + [module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_checker_sees_upward_imports_and_cycles(tmp_path, monkeypatch):
    """The checks above can fail: a planted upward import and cycle are found."""
    package = tmp_path / "unlearn"
    (package / "_core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_core" / "__init__.py").write_text("from ..methods import forget\n")
    (package / "methods.py").write_text("from ._core import Split\n")
    (package / "data.py").write_text("import importlib\nimportlib.import_module('unlearn.methods')\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    modules = _modules()
    planted = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert planted["unlearn._core"] == {"unlearn.methods"}
    assert planted["unlearn.data"] == {"unlearn.methods"}  # a dynamic import counts too
    with pytest.raises(AssertionError, match="imports unlearn.methods"):
        test_no_module_imports_a_higher_layer(planted)
    with pytest.raises(AssertionError, match="import cycle"):
        test_the_package_has_no_import_cycle(planted)
