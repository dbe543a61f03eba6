"""The import graph between our packages, read from the source with ``ast``, and the
architecture rules checked on it (``tests/test_architecture.py``).

A package is a folder: ``app/services/scheduling/slots.py`` belongs to the package
``app.services.scheduling``, and the top-level files of ``app/`` (``main.py``, ``cli.py``...)
form the package ``app``. Every import statement counts, wherever it is (module level,
inside a function, under ``TYPE_CHECKING``): an import moved into a function to dodge a
cycle is still a dependency, just a hidden one.

Kept apart from the test so that the test can also run the same checks on a synthetic tree
and prove they fail when they should."""

import ast
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOTS = ("app", "agents", "mcp_servers", "models")
ROUTER_PACKAGES = frozenset({"app.web.staff", "app.web.links", "app.web.admin", "app.web.api"})
DOMAIN_PACKAGES = ("app.services", "app.jobs", "app.config")
WEB = ("app.web", "fastapi", "starlette")
DATABASE = ("models.db", "sqlmodel", "sqlalchemy")


@dataclass(frozen=True)
class Import:
    """One imported name, resolved: ``target`` is the module (or external dotted name) it
    reaches, ``target_package`` the folder it lives in, or ``None`` when it is not ours."""

    source: str  # the importing module, dotted
    source_package: str
    path: str  # the importing file, relative to the root
    line: int
    target: str
    target_package: str | None
    target_is_module_file: bool  # a ``.py`` file other than ``__init__.py``

    def where(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def _is_under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


class SourceTree:
    """The modules under ``root`` for the given top-level packages, and their imports."""

    def __init__(self, root: Path, roots: Iterable[str] = ROOTS) -> None:
        self.root = root
        self.roots = tuple(roots)
        self.modules: dict[str, Path] = {}  # dotted module name -> file
        self.packages: set[str] = set()
        for top in self.roots:
            for path in sorted((root / top).rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                parts = path.relative_to(root).with_suffix("").parts
                package = ".".join(parts[:-1])
                self.packages.add(package)
                name = package if parts[-1] == "__init__" else ".".join(parts)
                self.modules[name] = path

    def package_of(self, module: str) -> str:
        path = self.modules[module]
        return ".".join(path.relative_to(self.root).parent.parts)

    def _resolve(self, dotted: str) -> tuple[str, str | None, bool]:
        """The longest prefix of ``dotted`` that is one of our modules or packages (the rest
        names an attribute), with its package; external names are kept whole."""
        if not _is_under(dotted, self.roots):
            return dotted, None, False
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self.modules:
                is_file = self.modules[candidate].name != "__init__.py"
                return candidate, self.package_of(candidate), is_file
            if candidate in self.packages:  # a folder without __init__.py
                return candidate, candidate, False
        return dotted, parts[0], False  # ours but missing: count it against the top package

    def imports(self) -> Iterator[Import]:
        for module, path in self.modules.items():
            source_package = self.package_of(module)
            is_init = path.name == "__init__.py"
            relative = str(path.relative_to(self.root))
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
            for node in ast.walk(tree):
                for dotted, line in self._imported_names(node, module, is_init):
                    target, target_package, is_file = self._resolve(dotted)
                    yield Import(
                        module, source_package, relative, line, target, target_package, is_file
                    )

    def _imported_names(
        self, node: ast.AST, module: str, is_init: bool
    ) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # The package a relative import starts from: the module's own package, then
                # one level up per extra dot.
                anchor = module.split(".") if is_init else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from pkg import name``: ``pkg.name`` when it is a module, else ``pkg``.
                yield (base if alias.name == "*" else f"{base}.{alias.name}"), node.lineno


@dataclass(frozen=True)
class Rule:
    """A forbidden direction: its name, and the test that spots an import going that way."""

    description: str
    breaks: Callable[[Import], bool]


def _domain_to_web(imp: Import) -> bool:
    return _is_under(imp.source_package, DOMAIN_PACKAGES) and _is_under(imp.target, WEB)


def _mcp_to_agents(imp: Import) -> bool:
    return _is_under(imp.source_package, ["mcp_servers"]) and _is_under(imp.target, ["agents"])


def _mcp_to_web(imp: Import) -> bool:
    return _is_under(imp.source_package, ["mcp_servers"]) and _is_under(imp.target, ["app.web"])


def _agents_to_database(imp: Import) -> bool:
    return _is_under(imp.source_package, ["agents"]) and _is_under(imp.target, DATABASE)


def _below_app_to_composition_root(imp: Import) -> bool:
    return imp.source_package.startswith("app.") and imp.target_package == "app"


def _router_to_router(imp: Import) -> bool:
    return (
        imp.source_package in ROUTER_PACKAGES
        and imp.target_package in ROUTER_PACKAGES
        and imp.target_is_module_file
        and imp.target != imp.source
    )


def _jobs_to_services(imp: Import) -> bool:
    return _is_under(imp.source_package, ["app.jobs"]) and _is_under(imp.target, ["app.services"])


def _config_to_ours(imp: Import) -> bool:
    return (
        _is_under(imp.source_package, ["app.config"])
        and imp.target_package is not None
        and not _is_under(imp.target_package, ["app.config"])
    )


RULES = (
    Rule(
        "domain (app.services, app.jobs, app.config) -> web (app.web, fastapi, starlette)",
        _domain_to_web,
    ),
    Rule("mcp_servers -> agents", _mcp_to_agents),
    Rule("mcp_servers -> app.web", _mcp_to_web),
    Rule("agents -> database (models.db, sqlmodel, sqlalchemy)", _agents_to_database),
    Rule(
        "below app/ -> composition root (app.main, app.cli, app.asgi, app.routes)",
        _below_app_to_composition_root,
    ),
    Rule("router -> another router", _router_to_router),
    Rule("app.jobs -> app.services", _jobs_to_services),
    Rule("app.config -> anything of ours", _config_to_ours),
)


def forbidden_imports(imports: Iterable[Import], rules: Iterable[Rule] = RULES) -> list[str]:
    """One line per import that goes a forbidden way, naming the rule, file and line (once,
    however many names the statement takes from that module)."""
    rules = tuple(rules)
    lines = (
        f"[{rule.description}] {imp.where()}"
        for imp in imports
        for rule in rules
        if rule.breaks(imp)
    )
    return list(dict.fromkeys(lines))


def package_graph(imports: Iterable[Import]) -> dict[str, dict[str, list[Import]]]:
    """Package -> package it imports -> the import statements that make the edge."""
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in imports:
        if imp.target_package is not None and imp.target_package != imp.source_package:
            graph[imp.source_package][imp.target_package].append(imp)
    return graph


def _strongly_connected(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively; components of more than one package only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    nodes = sorted(set(graph) | {dst for edges in graph.values() for dst in edges})
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, {})))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
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
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _cycle_through(graph: dict[str, dict[str, list[Import]]], members: list[str]) -> list[str]:
    """A shortest cycle from the component's first package back to itself (BFS)."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt not in inside:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {members}")


def package_cycles(imports: Iterable[Import]) -> list[str]:
    """One paragraph per group of packages that import each other: the group, a shortest
    cycle through it, then every import edge inside the group with the statements that
    make it (the ones to cut are among them)."""
    graph = package_graph(imports)
    reports = []
    for members in _strongly_connected(graph):
        lines = [
            f"packages {', '.join(members)} import each other;",
            "  a cycle: " + " -> ".join(_cycle_through(graph, members)),
            "  the imports between them:",
        ]
        for src in members:
            for dst in sorted(graph[src]):
                if dst not in members:
                    continue
                edge = list(dict.fromkeys(imp.where() for imp in graph[src][dst]))
                shown = "; ".join(edge[:3])
                more = f" (and {len(edge) - 3} more)" if len(edge) > 3 else ""
                lines.append(f"    {src} -> {dst}: {shown}{more}")
        reports.append("\n".join(lines))
    return reports


def files_mentioning(root: Path, needle: str, places: Iterable[str]) -> list[str]:
    """``path:line`` of every text line under ``places`` (files or folders) containing
    ``needle``; binary files are skipped."""
    hits = []
    for place in places:
        target = root / place
        paths = [target] if target.is_file() else sorted(target.rglob("*"))
        for path in paths:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if needle in line:
                    hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits
