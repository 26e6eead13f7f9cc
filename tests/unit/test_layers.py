"""The architecture's arrows, read from the code: each layer imports only the layers below it.

feature_repo (Feast only) <- featureloop (the core) <- flows (Prefect), serving (HTTP) <- the CLI
(`featureloop.cli`) and the demo on top. Imports inside functions and under TYPE_CHECKING count too:
an arrow is an arrow whenever it is followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("featureloop", "flows", "serving", "dashboard", "data", "feature_repo")


def _modules() -> dict[str, Path]:
    found = {}
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module name the file imports (absolute)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from package import module` imports the module
                child = f"{node.module}.{alias.name}"
                names.add(child if child in MODULES else node.module)
    return names


def _ours(name: str) -> str | None:
    """The module of ours that an imported name refers to (longest match), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


IMPORTS = {module: _imports(path) for module, path in MODULES.items()}
EDGES = {
    module: {m for m in (_ours(n) for n in names) if m and m != module} for module, names in IMPORTS.items()
}


def _core(module: str) -> bool:
    return module.startswith("featureloop") and not module.startswith("featureloop.cli")


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("core", ("flows", "serving", "dashboard", "featureloop.cli", "data")),
        ("serving", ("flows", "dashboard", "featureloop.cli", "prefect", "data")),
        ("dashboard", ("flows", "serving", "featureloop.cli", "prefect", "data")),
        ("flows", ("serving", "dashboard", "featureloop.cli")),
        ("feature_repo", ("featureloop", "flows", "serving", "dashboard", "data")),
    ],
)
def test_each_layer_imports_only_the_layers_below_it(layer: str, forbidden: tuple[str, ...]) -> None:
    members = [m for m in MODULES if (_core(m) if layer == "core" else _within(m, layer))]
    assert members
    wrong = sorted(
        f"{module} imports {name}"
        for module in members
        for name in IMPORTS[module]
        if _within(name, *forbidden)
    )
    assert not wrong, "\n".join(wrong)


def test_the_statistics_import_nothing_above_numpy_scipy_and_pandas() -> None:
    """Drift statistics are pure functions of arrays: no scikit-learn, MLflow, Feast or Prefect, and of
    ours only the other statistics modules, the thresholds and durations; a release's decision too."""
    pure = ["featureloop.monitoring.statistics", "featureloop.monitoring.evidently", "featureloop.monitoring.drift",
            "featureloop.monitoring.profiles", "featureloop.monitoring.thresholds", "featureloop.durations",
            "featureloop.release.judge"]  # fmt: skip
    allowed = (
        "numpy",
        "scipy",
        "pandas",
        "pydantic",
        "__future__",
        "collections",
        "dataclasses",
        "typing",
        "math",
    )
    for module in pure:
        wrong = sorted(
            n
            for n in IMPORTS[module]
            if (not _within(n.split(".")[0], *allowed) and _ours(n) not in pure and _within(n, *OURS))
            or n.split(".")[0] in ("sklearn", "mlflow", "feast", "prefect", "duckdb")
        )
        assert not wrong, f"{module} imports {wrong}"


def test_no_two_modules_import_each_other_even_indirectly() -> None:
    """No cycles: each module can be read (and tested) after the ones it imports."""
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(EDGES[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_module_is_over_300_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
