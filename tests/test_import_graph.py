"""The package's import graph: no cycles anywhere, and the cache hit's modules stay light.

Read from the source with ``ast``, so that imports inside functions (the lazy ones a miss
makes) count as much as those at the top; imports under ``if TYPE_CHECKING:`` are for the
type checker only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import credproc

PACKAGE = Path(credproc.__file__).parent
# What a cache hit runs (cli's fast path) may import at module level: nothing but these. Each
# module costs a hit about 0.45 M instructions to find and load whatever its size (callgrind),
# so even credproc.log is loaded only when there is something to say.
# credproc.background is the due window's (an entry printed, its refresh left to a detached
# process): during an outage every run takes that path, and must answer at the cost of a hit.
HIT_MODULES = ("credproc", "credproc.cli", "credproc.resolution", "credproc.cache", "credproc.sources",
               "credproc.background")
# Not even __future__ (0.1 ms, a hundredth of the hit): these modules quote the annotations
# that name what only the type checker imports.
HIT_ALLOWED = {"os", "sys", "time", "_sha256", "_sha2", "hashlib", *HIT_MODULES}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, name: str, *, top_level_only: bool = False) -> set[str]:
    """The modules ``path`` imports (credproc's own resolved to module names)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = modules()
    found: set[str] = set()

    def visit(node: ast.AST, depth: int) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, depth)
            return
        if isinstance(node, ast.Import) and not (top_level_only and depth):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not (top_level_only and depth):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        nested = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for child in ast.iter_child_nodes(node):
            visit(child, depth + (1 if nested else 0))

    visit(tree, 0)
    return found


def test_no_import_cycle_anywhere_in_the_package():
    known = modules()
    graph = {name: {m for m in imports(path, name) if m in known and m != name}
             for name, path in known.items()}
    assert "credproc.resolution" in graph and "credproc.methods.saml" in graph  # the walk found the package

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    # The package's __init__ loads BaseSessionFactory lazily; a submodule importing a
    # sibling through "from credproc import x" names credproc.x, not credproc itself.
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_hit_path_modules_import_only_the_standard_library_basics_at_top_level():
    known = modules()
    for name in HIT_MODULES:
        heavy = sorted(m for m in imports(known[name], name, top_level_only=True) if m not in HIT_ALLOWED)
        assert heavy == [], f"{name} imports {heavy} at module level, which every cache hit would pay"


def test_the_graph_reader_sees_lazy_imports_and_skips_type_checking_blocks(tmp_path):
    """The reader itself: a function-level import counts, a TYPE_CHECKING one does not."""
    source = tmp_path / "sample.py"
    source.write_text("import os\nTYPE_CHECKING = False\nif TYPE_CHECKING:\n    import typing\n"
                      "def f():\n    import json\n")
    assert imports(source, "sample") == {"os", "json"}
    assert imports(source, "sample", top_level_only=True) == {"os"}


def test_the_airflow_connections_file_is_parsed_on_a_miss_only():
    """The hit reads the Airflow connections file's text (sources, for the cache key) and
    never parses it: its parser, credproc.airflow_files, is imported by no hit module, even
    inside a function, and it imports json and yaml (the optional credproc[yaml]) only inside
    the functions that parse; nothing else in the package imports yaml."""
    known = modules()
    for name in HIT_MODULES:
        assert "credproc.airflow_files" not in imports(known[name], name), f"{name} imports the Airflow file parser"
    parser = known["credproc.airflow_files"]
    top = imports(parser, "credproc.airflow_files", top_level_only=True)
    assert {"yaml", "json"} & top == set(), f"credproc.airflow_files imports {top} at module level"
    assert {"yaml", "json"} <= imports(parser, "credproc.airflow_files")  # the reader sees the lazy ones
    users = sorted(name for name, path in known.items() if "yaml" in imports(path, name))
    assert users == ["credproc.airflow_files"], users
