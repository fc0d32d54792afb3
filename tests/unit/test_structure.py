"""The package's structure, read with `ast` (the package is not imported):

- no private name of a library: `from lib import _x`, `lib._x`, or `obj._x` where no `_x` is
  defined anywhere in the package; nor a subclass of a library class that overrides one of its
  private methods or attributes (the library is imported to see what its class has);
- no import cycle between the package's modules, imports inside functions included (a package's
  `__init__` and one of its own direct submodules importing each other is tolerated).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "scn_workflow"
LIBRARIES = {"celery", "kombu", "redis", "sqlalchemy", "flask", "werkzeug", "marshmallow", "transitions", "alembic",
             "psycopg", "smtplib", "email", "jinja2", "flask_smorest", "apispec", "prometheus_client", "billiard",
             "gunicorn"}
# Documented public API despite the underscore: werkzeug's LocalProxy, namedtuple.
PUBLIC_UNDERSCORE = {"_get_current_object", "_asdict", "_replace", "_fields", "_make"}
# Private methods a library documents as the ones to override: marshmallow's custom fields.
DOCUMENTED_OVERRIDES = {"marshmallow": {"_serialize", "_deserialize"}}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def parse(package: Path) -> dict[str, tuple[Path, ast.Module]]:
    """Each module of the package by dotted name (a package by its own name), with its tree."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def imported_module(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module a `from ... import` reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def library_bindings(module: str, is_package: bool, tree: ast.Module) -> dict[str, str]:
    """The names a module binds to a library or to something imported from one, each with the
    dotted path it stands for (`sa` -> `sqlalchemy`, `Api` -> `flask_smorest.Api`)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in LIBRARIES:
                    names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            source = imported_module(module, is_package, node)
            if source.split(".")[0] in LIBRARIES:
                names.update((alias.asname or alias.name, f"{source}.{alias.name}") for alias in node.names)
    return names


def resolve(dotted: str):
    """What a library's dotted path names (a module, or an attribute of one); None if nothing."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            found = getattr(found, part, None)
        return found
    return None


def overrides(node: ast.ClassDef, base: str) -> list[str]:
    """The private names a class defines that its library base class `base` already has (all of
    its private names when the base cannot be looked up), but the documented extension points."""
    defined = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    defined += [t.id for n in node.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)]
    found = resolve(base)
    allowed = DOCUMENTED_OVERRIDES.get(base.split(".")[0], set())
    return [name for name in defined
            if is_private(name) and name not in allowed and (found is None or hasattr(found, name))]


def root_name(node: ast.expr) -> str | None:
    """`a` of `a.b.c` (and of `a.b.c(...)`), if the chain starts with a name."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def defined_names(trees) -> set[str]:
    """Every name the package defines itself: functions, classes, variables, attributes, arguments."""
    names = set()
    for _path, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return names


def private_library_uses(package: Path) -> list[str]:
    """Where the package reaches into a library's private names, as "file:line what", in file order."""
    modules = parse(package)
    ours = defined_names(modules.values())
    found = []  # (file, line, what)
    for module, (path, tree) in modules.items():
        is_package = path.name == "__init__.py"
        libs = library_bindings(module, is_package, tree)
        where = path.relative_to(package.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] in LIBRARIES and any(is_private(p) for p in parts):
                        found.append((where, node.lineno, f"import {alias.name}"))
            elif isinstance(node, ast.ImportFrom):
                source = imported_module(module, is_package, node)
                if source.split(".")[0] in LIBRARIES:
                    for name in [*source.split("."), *(a.name for a in node.names)]:
                        if is_private(name):
                            found.append((where, node.lineno, f"from {source} import {name}"))
            elif isinstance(node, ast.Attribute) and is_private(node.attr):
                if root_name(node.value) in libs or node.attr not in ours:
                    found.append((where, node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, (ast.Name, ast.Attribute)) and root_name(base) in libs:
                        root, _, rest = ast.unparse(base).partition(".")
                        for name in overrides(node, ".".join(filter(None, (libs[root], rest)))):
                            what = f"class {node.name}({ast.unparse(base)}) overrides {name}"
                            found.append((where, node.lineno, what))
    return [f"{where}:{line} {what}" for where, line, what in sorted(found)]


def import_graph(package: Path) -> tuple[dict[str, set[str]], dict[str, Path]]:
    """Which of the package's modules each module imports, anywhere in its code."""
    modules = parse(package)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, (path, tree) in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = imported_module(module, path.name == "__init__.py", node)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        edges[module].add(submodule)
                    elif source in modules:
                        edges[module].add(source)
            elif isinstance(node, ast.Import):
                edges[module].update(a.name for a in node.names if a.name in modules)
        edges[module].discard(module)
    return edges, {m: path for m, (path, _tree) in modules.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other (Tarjan's algorithm), those of two or more."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def import_cycles(package: Path) -> list[list[str]]:
    """Groups of modules that import each other, but a package and one of its direct submodules."""
    edges, paths = import_graph(package)

    def tolerated(group: list[str]) -> bool:
        if len(group) != 2:
            return False
        parent, child = group
        return (paths[parent].name == "__init__.py" and child.startswith(parent + ".")
                and child.count(".") == parent.count(".") + 1)

    return [group for group in strongly_connected(edges) if not tolerated(group)]


# --- the package as it is ---------------------------------------------------------------------------------


def test_no_private_name_of_a_library():
    assert private_library_uses(PACKAGE) == []


def test_no_import_cycle():
    assert [" <-> ".join(group) for group in import_cycles(PACKAGE)] == []


# --- the checks themselves, on a package made for them -----------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_private_names_of_libraries_are_found(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "reach.py": (
            "import sqlalchemy as sa\n"
            "from flask import current_app\n"
            "from sqlalchemy.orm import _private_helper\n"
            "import kombu._internal\n"
            "from flask_smorest import Api\n"
            "def commit(state):\n"
            "    state._commit_all()\n"  # defined nowhere in the package
            "    sa._wrapped\n"  # a library's module, whatever the package defines
            "    return current_app._get_current_object()\n"  # documented public
            "class Mine(Api):\n"
            "    def _register_responses(self): ...\n"  # flask-smorest's own
            "    def _mine(self): ...\n"  # a new name: nothing overridden
            "    def handle_http_exception(self, error): ...\n"
        ),
        "own.py": (
            "class Limiter:\n"
            "    def __init__(self):\n"
            "        self._hits = {}\n"
            "    def hit(self, other):\n"
            "        return other._hits, self._wrapped\n"  # _hits is ours; _wrapped is defined below
            "_wrapped = None\n"
        ),
    })
    assert private_library_uses(package) == [
        "pkg/reach.py:3 from sqlalchemy.orm import _private_helper",
        "pkg/reach.py:4 import kombu._internal",
        "pkg/reach.py:7 state._commit_all",
        "pkg/reach.py:8 sa._wrapped",
        "pkg/reach.py:10 class Mine(Api) overrides _register_responses",
    ]


def test_import_cycles_are_found_through_function_level_imports(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def later():\n    from pkg.c import thing\n",
        "c.py": "from . import a\nthing = 1\n",
        "web/__init__.py": "from pkg.web import pages\ndef svc(): ...\n",
        "web/pages.py": "from pkg.web import svc\n",  # a package and its own submodule: tolerated
        "solo.py": "import pkg.solo\n",  # itself
    })
    assert import_cycles(package) == [["pkg.a", "pkg.b", "pkg.c"]]
