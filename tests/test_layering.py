"""The house's layering, read from the import statements of every module (no module is imported).

Rules (issue 8 item 1, shared/DESIGN.md):
* theorylab never imports verify (verify plugs into the ``theorylab`` command through the
  ``theorylab.commands`` entry-point group instead);
* verify/algorithms never touch torch.distributed nor the executors (verify.runtime);
* verify/runtime (the executors) never imports algorithms, claims or verify.run;
* nothing but the report and the CLI imports the claims;
* figures read saved results, not claims;
* no import cycle inside theorylab (the old topology -> mixing -> spectral -> topology circle).

Every ``import`` / ``from ... import`` counts, also those inside functions (a lazy import is
still a dependency); ``importlib.import_module("name")`` with a literal name counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theorylab", "verify", "figures")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from a import b`` gives a and a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(importer_prefix: str, forbidden: tuple[str, ...], allow=()) -> list[str]:
    bad = []
    for name, deps in IMPORTS.items():
        if not _under(name, importer_prefix) or name in allow:
            continue
        for dep in sorted(deps):
            if any(_under(dep, f) for f in forbidden):
                bad.append(f"{name} imports {dep}")
    return bad


def test_the_modules_were_found():
    for expected in ("theorylab.cli", "theorylab.stochastic", "verify.cli", "verify.tasks"):
        assert expected in MODULES
    assert "theorylab.commands.verify" not in MODULES  # moved to verify.cli


def test_theorylab_never_imports_verify():
    assert _violations("theorylab", ("verify",)) == []


def test_algorithms_never_touch_torch_distributed_or_the_executors():
    assert _violations("verify.algorithms", ("torch.distributed", "verify.runtime")) == []


def test_executors_never_import_algorithms_claims_or_run():
    forbidden = ("verify.algorithms", "verify.claims", "verify.run")
    assert _violations("verify.runtime", forbidden) == []
    # the tasks (which build algorithms and call verify.run) live above the executors; the one
    # reference back is entry's deprecated alias for the old task paths
    # (verify.runtime.entry:quadratic_run ...), which warns; delete it with the alias
    assert _violations("verify.runtime", ("verify.tasks",)) == [
        "verify.runtime.entry imports verify.tasks"
    ]


def test_only_the_report_and_the_cli_import_claims():
    bad = [
        v
        for v in _violations("", ("verify.claims",))
        if not _under(v.split()[0], "verify.claims")
        and v.split()[0] not in ("verify.report", "verify.cli")
    ]
    assert bad == []


def _closure(start: str) -> set[str]:
    """Modules of the house reachable from ``start`` through import statements."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        for dep in IMPORTS.get(name, ()):
            for candidate in (dep, dep.rpartition(".")[0]):
                if candidate in MODULES and candidate not in seen:
                    seen.add(candidate)
                    todo.append(candidate)
    return seen


def test_figures_read_saved_results_not_claims():
    reached = set().union(*(_closure(m) | {m} for m in MODULES if _under(m, "figures")))
    assert sorted(m for m in reached if _under(m, "verify.claims")) == []


def test_no_import_cycle_inside_theorylab():
    graph = {
        name: {d for d in deps if d in MODULES and _under(d, "theorylab") and d != name}
        for name, deps in IMPORTS.items()
        if _under(name, "theorylab")
    }
    # a package importing its own submodules (theorylab.rates -> theorylab.rates.x) is not a
    # cycle of concepts; drop parent -> child edges
    graph = {a: {b for b in bs if not _under(b, a)} for a, bs in graph.items()}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_stochastic_is_the_ground_floor():
    # the one home of W imports nothing of theorylab but the errors
    deps = {d for d in IMPORTS["theorylab.stochastic"] if _under(d, "theorylab")}
    assert deps <= {"theorylab.errors"} | {
        f"theorylab.errors.{n}" for n in ("TheorylabError", "check_int", "check_positive")
    }
