"""Tests of the code's shape: no import cycles between modules and the layering of docs/architecture.md.

Every import counts: at the top of a module, inside a function and under `TYPE_CHECKING` (a cycle that only
type checkers see still ties the modules together for a reader). The layers, lowest first:

- infrastructure (`INFRASTRUCTURE`): configuration, database, login sessions and roles, audit, bus, files,
  translations, mail, metrics, the OpenAPI registry;
- subsystems (`SUBSYSTEMS`), each allowed to use the ones it names;
- handlers: `server.api` (JSON) and `server.pages` (HTML), thin, over the subsystems;
- the application (`APPLICATION`): `create_app`, the CLI, middlewares, first-run bootstrap.

`sfu` knows nothing of `server` or `recorder`; `recorder` uses `sfu` only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "sfu", "recorder")

INFRASTRUCTURE = {"server", "server.config", "server.db", "server.errors", "server.auth", "server.audit",
                  "server.bus", "server.files", "server.i18n", "server.formats", "server.logs", "server.mail",
                  "server.metrics", "server.openapi", "server.ratelimit", "server.tls", "server.backup",
                  "server.health"}
SUBSYSTEMS: dict[str, set[str]] = {
    "server.people": set(),
    "server.schedule": {"server.people"},
    "server.learning": {"server.people", "server.schedule", "server.live"},  # the archive of recorded lectures
    "server.live": {"server.schedule"},  # schedule.visibility: who enters a meeting's room; schedule.ending: its end
    "server.reports": {"server.people", "server.schedule", "server.learning", "server.live"},
}
HANDLERS = {"server.api", "server.pages"}
APPLICATION = {"server.app", "server.cli", "server.middlewares", "server.bootstrap", "server.sharedlimits"}


def module_name(path: Path) -> str:
    """module_name: the dotted name of a source file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """modules: every module of the project's packages (migrations excluded: they are scripts run by alembic)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """imports_of: the project modules `name` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import server.db.models` names server.db.models
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    """graph: module → the project modules it imports."""
    known = modules()
    return {name: set(imports_of(name, path, known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """cycles: the strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str:
    """layer_of: the unit of the layering a module belongs to (a package or a top-level module)."""
    for unit in sorted(INFRASTRUCTURE | set(SUBSYSTEMS) | HANDLERS | APPLICATION, key=len, reverse=True):
        if module == unit or module.startswith(unit + "."):
            return unit
    return module.split(".")[0]  # sfu, recorder


def allowed(source: str, target: str) -> bool:
    """allowed: may a module of unit `source` import one of unit `target`?"""
    if source == target:
        return True
    if source == "sfu":
        return False
    if source == "recorder":
        return target == "sfu"
    if target in ("sfu", "recorder"):
        return source in SUBSYSTEMS or source in APPLICATION
    if source in INFRASTRUCTURE:
        return target in INFRASTRUCTURE
    if source in SUBSYSTEMS:
        return target in INFRASTRUCTURE or target in SUBSYSTEMS[source]
    if source in HANDLERS:
        return target in INFRASTRUCTURE or target in SUBSYSTEMS or (source, target) == ("server.pages", "server.api")
    return source in APPLICATION and target != "server.cli"


def violations(edges: dict[str, set[str]]) -> list[str]:
    """violations: every import that goes against the layering, as 'a -> b'."""
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                  if not allowed(layer_of(a), layer_of(b)))


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "modules that import each other (directly or round a circle):\n" + \
        "\n".join(" ↔ ".join(c) for c in found)


def test_layering() -> None:
    bad = violations(graph())
    assert bad == [], "imports against the layering (see the top of this module and docs/architecture.md):\n" + \
        "\n".join(bad)


def test_every_server_module_has_a_layer() -> None:
    units = INFRASTRUCTURE | set(SUBSYSTEMS) | HANDLERS | APPLICATION
    orphans = sorted(m for m in modules() if m.startswith("server") and layer_of(m) not in units)
    assert orphans == [], f"server modules outside every layer (add them to one): {orphans}"


def test_the_checks_can_fail() -> None:
    # A circle and an upward import, made up, are caught by the same functions the tests above use.
    circle = {"server.live.a": {"server.live.b"}, "server.live.b": {"server.live.c"},
              "server.live.c": {"server.live.a"}}
    assert cycles(circle) == [["server.live.a", "server.live.b", "server.live.c"]]
    upward = {"server.config": {"server.live.service"}, "server.people.units": {"server.schedule.meetings"},
              "sfu.room": {"server.config"}, "server.api.units": {"server.app"}, "server.live.chat": {"server.db"}}
    assert violations(upward) == ["server.api.units -> server.app", "server.config -> server.live.service",
                                  "server.people.units -> server.schedule.meetings", "sfu.room -> server.config"]
    # TYPE_CHECKING and function-level imports count.
    sample = ROOT / "server" / "live" / "service.py"
    assert "server.live.connection" in set(imports_of("server.live.service", sample, modules()))
