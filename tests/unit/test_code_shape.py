"""The shape the code keeps: small functions and files, and no import cycles, in the runtime packages."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("model_router", "python_backends", "openai_front", "launcher", "client")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 300, 60


def _sources() -> list[Path]:
    return [p for pkg in RUNTIME for p in (ROOT / pkg).rglob("*.py")]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert source.count("\n") <= MAX_FILE_LINES, f"{path.name}: over {MAX_FILE_LINES} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "python_backends":
        parts = parts[2:]  # python_backends/transformers/<package>: imported by its own name
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports, TYPE_CHECKING imports included (a cycle there is still a cycle of design)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            name = f"{base}.{node.module}" if node.level and node.module else (base if node.level else node.module)
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
    return found


def test_no_import_cycles_between_modules() -> None:
    modules = {_module(p): p for p in _sources()}
    graph = {m: {i for i in _imports(p, m) if i in modules and i != m and not m.startswith(i + ".")}
             for m, p in modules.items()}
    for start in graph:  # depth-first search for a path back to `start`
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                assert nxt != start, f"import cycle: {' -> '.join(path + [nxt])}"
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))


OURS = {"model_router", "openai_front", "client", "launcher"}
# Imports of our own modules made inside a function, each for a reason other than a cycle.
LAZY_IMPORTS = {
    ("model_router/classifier/classifier.py", "model_router.classifier.embedding"):
        "the e5 embedding model (onnxruntime) loads only when a query needs it",
    ("client/cli.py", "client.stats"): "the metrics report's parsing, only for `tmr stats`",
}


def _function_imports(path: Path, module: str) -> set[str]:
    """Our modules that `path` imports inside a function body."""
    found: set[str] = set()
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found |= {name for name in _imports_of(node, path, module) if name.split(".")[0] in OURS}
    return found


def _imports_of(node: ast.Import | ast.ImportFrom, path: Path, module: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = f"{package}.{node.module}" if node.level and node.module else (package if node.level else node.module)
    return {base}


def test_the_contract_is_the_bottom_layer() -> None:
    """model_router.contract imports nothing of ours but the vocabulary and the errors."""
    allowed = ("model_router.contract", "model_router.vocabulary", "model_router.errors")
    for path in sorted((ROOT / "model_router" / "contract").glob("*.py")):
        module = _module(path)
        ours = {i for i in _imports(path, module) if i.split(".")[0] in OURS}
        above = sorted(i for i in ours if not i.startswith(allowed))
        assert not above, f"{path.name} imports {above}"


def test_no_import_of_ours_hides_in_a_function() -> None:
    """An import inside a function is how a cycle hides; those that remain load something costly."""
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        hidden = {name for name in _function_imports(path, _module(path)) if (rel, name) not in LAZY_IMPORTS}
        assert not hidden, f"{rel}: imports {sorted(hidden)} inside a function"
