"""The code's shape, checked: no module imports another's private names, the package's modules
import without cycles, no function in src/ is longer than 80 lines, and the public API imports
lazily (``hmlearn --help`` loads no torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "hmlearn"
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import in the file, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
    return found


def _python_files() -> list[Path]:
    return sorted([*SRC.rglob("*.py"), *(ROOT / "bench").glob("*.py")])


def test_no_module_imports_another_modules_private_names():
    offences = []
    for path in _python_files():
        for line, module, names in _imports(path):
            if not module.startswith("hmlearn") and not (path.parent.name == "bench" and "." not in module):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [part for part in module.split(".") if part.startswith("_") and not part.startswith("__")]
            if private:
                offences.append(f"{path.relative_to(ROOT)}:{line}: {module} -> {', '.join(private)}")
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _, module, names in _imports(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            for target in targets:
                # importing a package runs its __init__ only: hmlearn.x.y depends on hmlearn.x.y (and its parents' inits)
                if target in modules and target != name and target != "hmlearn":
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles_between_modules():
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles (each line: modules that import each other, directly or not):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_in_src_is_longer_than_80_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - first + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_public_api_imports_and_help_loads_no_torch():
    code = ("import sys\n"
            "from hmlearn import HMCClassifier, TrainConfig, fit, load_dataset, read_table, evaluate, Hierarchy, "
            "HMLError\n"
            "assert callable(fit) and callable(load_dataset) and callable(read_table) and callable(evaluate)\n"
            "assert TrainConfig().epochs == 100 and HMCClassifier().heads == 1\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    help_only = ("import sys\nfrom click.testing import CliRunner\nfrom hmlearn.cli import main\n"
                 "for args in (['--help'], ['train', '--help'], ['train-images', '--help'], ['sweep', '--help']):\n"
                 "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
                 "print('torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", help_only], check=True, capture_output=True, text=True).stdout
    assert shown.strip() == "False"


@pytest.mark.parametrize("name", ["no_such_name"])
def test_an_unknown_public_name_is_an_attribute_error(name):
    import hmlearn

    with pytest.raises(AttributeError, match=name):
        getattr(hmlearn, name)
