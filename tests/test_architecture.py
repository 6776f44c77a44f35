"""The house's rules that import-linter's contracts (pyproject.toml, run by `make test`) do not state: no import
cycle among the project's modules, a short longest chain of imports, and short parameter lists in tasks/."""

import ast
from functools import cache
from pathlib import Path

import grimp

from tasks.core.settings import PROJECT_ROOT

PACKAGES = ("tasks", "flows", "pm25", "benchmarks")
MAX_CHAIN = 10  # modules, from the top of the longest chain to its bottom
MAX_PARAMETERS = 6  # a settings section or a record counts as one


def import_graph() -> dict[str, set[str]]:
    """Each of the project's modules (tests aside) and the project's modules it imports, anywhere in its body."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def longest_chain(graph: dict[str, set[str]]) -> tuple[str, ...]:
    """The longest path of imports (the graph has no cycle)."""

    @cache
    def from_module(module: str) -> tuple[str, ...]:
        return max(((module, *from_module(imported)) for imported in graph[module]), key=len, default=(module,))

    return max((from_module(module) for module in graph), key=len)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            if state.get(imported) == "open":
                found.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    return found


def test_no_module_imports_itself_through_others_and_no_chain_is_longer_than_ten():
    graph = import_graph()
    assert cycles(graph) == []
    chain = longest_chain(graph)
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_the_checks_measure_a_chain_and_find_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": set()}
    assert longest_chain(graph) == ("a", "b", "c") and cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]


def test_no_function_in_tasks_takes_more_than_six_parameters():
    long = []
    for path in sorted((PROJECT_ROOT / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
                count = len([name for name in names if name not in ("self", "cls")])
                count += bool(arguments.vararg) + bool(arguments.kwarg)
                if count > MAX_PARAMETERS:
                    long.append(f"{Path(path).relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({count})")
    assert long == []


SCANNED = ("tasks", "flows", "pm25", "benchmarks", "tests")
FORBIDDEN_TEXT = ("PREFECT__", "keras.src")  # Prefect's private settings; Keras's private modules


def private_uses(source: str) -> list[str]:
    """What `source` reads of Prefect's or Keras's internals: an import of `prefect.server` or of a module or name
    with a leading underscore under `prefect` or `keras`, an underscore-prefixed attribute of a name imported from
    them, or the text of a private setting or module (in code, strings or comments alike)."""
    found = [text for text in FORBIDDEN_TEXT if text in source]
    bound: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                path = f"{module}.{alias.name}" if module else alias.name
                if path.split(".")[0] not in ("prefect", "keras", "tensorflow"):
                    continue
                bound.add((alias.asname or alias.name).split(".")[0])
                if path.startswith("prefect.server") or any(part.startswith("_") for part in path.split(".")):
                    found.append(f"import {path}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and isinstance(node.value, ast.Name | ast.Attribute)):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"{ast.unparse(node)}")
    return found


def test_the_project_reads_no_private_name_of_prefect_or_keras():
    this_file = Path(__file__).resolve()
    offenders = {str(path.relative_to(PROJECT_ROOT)): uses for package in SCANNED
                 for path in sorted((PROJECT_ROOT / package).rglob("*.py")) if path.resolve() != this_file
                 if (uses := private_uses(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_scan_finds_each_kind_of_private_use():
    assert private_uses("from prefect.server.api.server import create_app") == ["import prefect.server.api.server.create_app"]
    assert private_uses("from prefect.context import _thing") == ["import prefect.context._thing"]
    assert private_uses("import prefect._internal.compatibility") == ["import prefect._internal.compatibility"]
    assert private_uses("import prefect\nprefect.settings._private") == ["prefect.settings._private"]
    assert private_uses("from keras import random\nrandom._draws") == ["random._draws"]
    assert private_uses("os.environ['PREFECT__SERVER_FINAL'] = '1'") == ["PREFECT__"]
    assert private_uses("import importlib\nimportlib.import_module('keras.src.backend')") == ["keras.src"]
    assert private_uses("import prefect\nprefect.flow.__name__\nother._private") == []
