"""The house rules of the README's Architecture section: imports point down the layers, no circles, and
``import ketaplan`` loads no heavy library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ketaplan

PACKAGE = Path(ketaplan.__file__).parent

LAYERS = (
    ("errors", "_lazy", "_data", "limits", "user_yaml", "finite"),
    ("regimen",),
    ("models",),
    ("engine",),
    ("simulation",),
    ("nonmem",),
    ("population",),
    ("individualize",),
    ("estimation",),
    ("planning", "validation"),
    ("course",),
    ("report",),
    ("web", "cli"),
)
"""Bottom to top, as in the README; a package may import its own layer's modules and any layer below."""
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ketaplan module imported anywhere in the file (module level and inside functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ketaplan"):
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ketaplan")]
    return found


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target in _imports(path):
            dep = _resolve(target, modules)
            if dep and dep != name and not (path.name == "__init__.py" and dep.startswith(name + ".")) \
                    and not (modules[dep].name == "__init__.py" and name.startswith(dep + ".")):
                graph[name].add(dep)
    return graph


def test_every_package_has_a_layer():
    tops = {m.split(".")[1] for m in _modules() if m.count(".") >= 1}
    assert tops <= set(RANK), f"packages without a layer in the README's Architecture: {sorted(tops - set(RANK))}"


def test_imports_point_down_the_layers():
    upward = []
    for name, path in _modules().items():
        parts = name.split(".")
        if len(parts) < 2:
            continue
        for line, target in _imports(path):
            other = target.split(".")[1] if target.count(".") >= 1 else None
            if other in RANK and RANK[other] > RANK[parts[1]]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(" -> ".join([*trail[trail.index(dep):], dep]))
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_import_ketaplan_loads_no_heavy_library():
    code = ("import sys, ketaplan; heavy = ('pandas', 'scipy', 'pint', 'matplotlib', 'sqlalchemy', 'dask', 'numpy'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_public_api_resolves_lazily():
    assert callable(ketaplan.simulate) and callable(ketaplan.simulate_dataset) and callable(ketaplan.fit_patient)
    assert set(ketaplan.__all__) <= set(dir(ketaplan))
    for name in ketaplan.__all__:
        assert getattr(ketaplan, name) is not None
