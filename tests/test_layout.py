"""The shape of the package: one exception tree in ``agegate.errors``, ``__all__`` everywhere,
every documented name public, no import cycle, no oversized module.

Modules that need an optional dependency (Django, Litestar, Quart, the credentials extra) are
skipped, not left out, when it is missing.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

import agegate
from agegate.errors import AgeGateError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agegate"
#: Runs the command line when imported: checked from its source only.
NOT_IMPORTED = {"agegate.__main__", "agegate.cli.__main__"}
#: The longest a module may be, in lines.
MAX_LINES = 400
#: The public names DESIGN.md promises at the top level: its Python API, and the extension
#: points an app builds on (custom pages, the relational purge handlers).
DESIGN_NAMES = {
    "AgeGate",
    "AgeGateError",
    "AgeGateMiddleware",
    "AgePolicy",
    "AgeSignal",
    "Attestation",
    "Decision",
    "InvalidBirthDate",
    "Keyring",
    "Pages",
    "PostgresDatabase",
    "PurgeReport",
    "SQLiteDatabase",
    "UnderAgeError",
    "lower_wins",
    "open_store",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


PATHS = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(PATHS)
IMPORTABLE = [m for m in MODULES if m not in NOT_IMPORTED]


def _load(name: str) -> ModuleType:
    """Import ``name``; skip the test when an optional dependency is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.partition(".")[0] != "agegate":
            pytest.skip(f"{name} needs {exc.name}, which is not installed")
        raise


# -- one exception tree ---------------------------------------------------------------------------


def _exception_classes(module: ModuleType) -> list[type[BaseException]]:
    """The exception classes ``module`` defines, at its top level or inside its classes."""
    found: list[type[BaseException]] = []
    seen: set[int] = set()
    pending = list(vars(module).values())
    while pending:
        obj = pending.pop()
        # type(obj), not isinstance: a lazy object (Django's settings) would load on __class__.
        if not issubclass(type(obj), type) or id(obj) in seen or obj.__module__ != module.__name__:
            continue
        seen.add(id(obj))
        if issubclass(obj, BaseException):
            found.append(obj)
        pending += vars(obj).values()
    return found


@pytest.mark.parametrize("name", IMPORTABLE)
def test_every_exception_is_defined_in_errors_and_derives_from_agegateerror(name: str) -> None:
    module = _load(name)
    for cls in _exception_classes(module):
        assert name == "agegate.errors", f"{name} defines {cls.__qualname__}: move it to agegate/errors.py"
        assert issubclass(cls, AgeGateError), f"{cls.__qualname__} does not derive from AgeGateError"


def test_the_errors_module_is_found() -> None:
    names = {cls.__name__ for cls in _exception_classes(_load("agegate.errors"))}
    assert {"AgeGateError", "ConfigurationError", "InvalidInput", "InvalidAccountId"} <= names


# -- __all__ --------------------------------------------------------------------------------------


def _static_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(value))
    return None


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all_and_every_name_in_it_exists(name: str) -> None:
    if name in NOT_IMPORTED:
        declared = _static_all(PATHS[name])
        assert declared is not None, f"{name} declares no __all__"
        assert declared == [], f"{name} is a script: its __all__ is empty"
        return
    module = _load(name)
    assert hasattr(module, "__all__"), f"{name} declares no __all__"
    declared = list(module.__all__)
    assert len(declared) == len(set(declared)), f"{name}.__all__ names something twice"
    private = [n for n in declared if n.startswith("_")]
    assert not private, f"{name}.__all__ lists private names {private}"
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists {missing}, which it does not have"


# -- every documented name is public --------------------------------------------------------------

_FROM_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(agegate(?:\.\w+)*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)", re.MULTILINE
)
#: ``agegate.X…`` in text, not inside a file name or URL (``sqlite:///agegate.sqlite3``).
_DOTTED = re.compile(r"(?<![\w/.\-])agegate((?:\.\w+)+)")
#: What follows ``agegate.`` in a file name, not a Python name.
_FILE_SUFFIXES = {"sqlite3", "db", "pot", "toml", "json", "log", "py"}


def _doc_files() -> list[Path]:
    return [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))] if p.is_file()]


def _is_module(dotted: str) -> bool:
    return dotted in PATHS


def _documented() -> set[tuple[str, str, str]]:
    """``(module, name, where)`` for each name the docs use: imported from ``module`` or
    reached as ``module.name``."""
    found: set[tuple[str, str, str]] = set()
    for path in _doc_files():
        text = path.read_text("utf-8")
        where = path.relative_to(ROOT).as_posix()
        for match in _FROM_IMPORT.finditer(text):
            module, names = match.group(1), match.group(2).strip("() \t\n")
            for item in names.replace("\n", " ").split(","):
                name = item.split(" as ")[0].strip()
                if name:
                    found.add((module, name, where))
        for match in _DOTTED.finditer(text):
            parts = ["agegate", *match.group(1).strip(".").split(".")]
            # The longest prefix that is a module; what follows it is a name in that module.
            cut = max(i for i in range(1, len(parts) + 1) if _is_module(".".join(parts[:i])))
            if cut < len(parts) and parts[cut] not in _FILE_SUFFIXES:
                found.add((".".join(parts[:cut]), parts[cut], where))
    return found


def test_the_docs_are_scanned() -> None:
    assert _doc_files(), "neither README.md nor docs/*.md found"
    documented = {(module, name) for module, name, _ in _documented()}
    assert ("agegate", "AgeGate") in documented


def test_every_documented_name_is_public() -> None:
    problems = []
    for module_name, name, where in sorted(_documented()):
        if name.startswith("_") or name == "*":
            continue
        if module_name == "agegate":
            if name not in agegate.__all__ and not _is_module(f"agegate.{name}"):
                problems.append(f"{where}: agegate.{name} is not in agegate.__all__")
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.partition(".")[0] != "agegate":
                continue  # an optional dependency: checked where it is installed
            raise
        if not hasattr(module, name) and not _is_module(f"{module_name}.{name}"):
            problems.append(f"{where}: {module_name}.{name} does not exist")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(DESIGN_NAMES))
def test_design_names_and_extension_points_are_in_agegate_all(name: str) -> None:
    assert name in agegate.__all__
    assert getattr(agegate, name) is not None


def test_agegate_all_is_what_the_package_offers() -> None:
    missing = [n for n in agegate.__all__ if not hasattr(agegate, n)]
    assert not missing
    for name in agegate.__all__:
        obj = getattr(agegate, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, AgeGateError)


# -- no import cycle ------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The imports run when the module is imported: not those inside functions or under
    ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += [*node.body, *node.orelse, *node.finalbody]
            for handler in node.handlers:
                pending += handler.body
        elif isinstance(node, ast.With | ast.ClassDef):
            pending += node.body
    return found


def _edges(name: str) -> set[str]:
    """The agegate modules that ``name`` imports at its top level and needs complete. Its own
    packages are left out when only their submodules are imported: Python imports a package
    before its modules, so those imports work while the package is still being imported."""
    path = PATHS[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts = name.split(".")
    ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    out: set[str] = set()
    for node in _module_level_imports(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                dotted = alias.name.split(".")
                out |= {".".join(dotted[:i]) for i in range(1, len(dotted) + 1)} - ancestors
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        submodules = {f"{source}.{alias.name}" for alias in node.names} & PATHS.keys()
        out |= submodules
        # ``from pkg import name`` needs pkg complete, unless every name is a submodule of a
        # package already being imported.
        if len(submodules) < len(node.names) or source not in ancestors:
            out.add(source)
    return {t for t in out if t in PATHS and t != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm, iterative (no recursion limit to worry about).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_static_import_graph_is_acyclic() -> None:
    graph = {name: _edges(name) for name in MODULES}
    assert graph["agegate.asgi.forms"] >= {"agegate.errors", "agegate.asgi.paths"}  # the parser works
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# Imports each module in a fresh interpreter of its own: one process imports the package (what
# Python does first for any submodule) and the other libraries the modules use, then forks a
# child per module, so each child imports that module and the agegate modules it needs, alone,
# as a fresh interpreter would.
_IMPORT_EACH = r"""
import importlib, json, os, sys
libraries, names = json.loads(sys.argv[1]), sys.argv[2:]
def report(record):
    os.write(1, (json.dumps(record) + "\n").encode())
try:
    import agegate
except BaseException as exc:
    report({"module": "agegate", "error": f"{type(exc).__name__}: {exc}"})
    sys.exit(0)
for library in libraries:
    try:
        importlib.import_module(library)
    except BaseException:
        pass  # a missing optional dependency: the modules that need it say so
running = 0
for name in names:
    if name in sys.modules:  # imported with the package, as any fresh interpreter would
        report({"module": name})
        continue
    if running >= 4:
        os.wait()
        running -= 1
    pid = os.fork()
    if pid:
        running += 1
        continue
    try:
        importlib.import_module(name)
        report({"module": name})
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.partition(".")[0] != "agegate":
            report({"module": name, "missing": exc.name})
        else:
            report({"module": name, "error": f"{type(exc).__name__}: {exc}"})
    except BaseException as exc:
        report({"module": name, "error": f"{type(exc).__name__}: {exc}"})
    os._exit(0)
while running:
    os.wait()
    running -= 1
"""


def _libraries() -> list[str]:
    """The modules outside agegate that agegate's modules import at their top level."""
    found: set[str] = set()
    for name in MODULES:
        for node in _module_level_imports(ast.parse(PATHS[name].read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif not node.level and node.module:
                found.add(node.module)
    return sorted(m for m in found if m.partition(".")[0] not in ("agegate", "__future__"))


@cache
def _imported_alone() -> dict[str, dict[str, str]]:
    if not hasattr(__import__("os"), "fork"):  # pragma: no cover
        pytest.skip("needs os.fork")
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(_libraries()), *IMPORTABLE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    results = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        results[record["module"]] = record
    return results


@pytest.mark.parametrize("name", IMPORTABLE)
def test_each_module_imports_alone(name: str) -> None:
    results = _imported_alone()
    if "agegate" in results and "error" in results["agegate"]:
        pytest.fail(f"import agegate failed: {results['agegate']['error']}")
    assert name in results, f"importing {name} alone crashed the interpreter"
    if "missing" in results[name]:
        pytest.skip(f"{name} needs {results[name]['missing']}, which is not installed")
    assert "error" not in results[name], f"importing {name} alone: {results[name]['error']}"


# -- small modules --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_no_module_is_over_the_line_limit(name: str) -> None:
    lines = len(PATHS[name].read_text("utf-8").splitlines())
    assert lines <= MAX_LINES, f"{PATHS[name].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
