"""Tests of sfu/hooks/__init__.py: the hook modules depend on each other in one direction, in its order."""

from __future__ import annotations

import ast
from pathlib import Path

import sfu.hooks

# sfu/hooks/__init__.py
ORDER = ("guard", "ice", "reader", "sender", "demux", "feedback", "receiver", "simulcast", "sync_receive", "wire",
         "connection")


def hook_imports(module: str) -> set[str]:
    """hook_imports: the sfu.hooks modules `module` imports (at any level, TYPE_CHECKING blocks included)."""
    tree = ast.parse((Path(sfu.hooks.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sfu.hooks."):
            found.add(node.module.removeprefix("sfu.hooks."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("sfu.hooks.") for a in node.names if a.name.startswith("sfu.hooks.")}
    return found


def test_every_module_is_in_the_order_and_imports_only_earlier_ones() -> None:
    modules = {p.stem for p in Path(sfu.hooks.__file__).parent.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER), "list a new hook module in ORDER and in sfu/hooks/__init__.py"
    docstring = sfu.hooks.__doc__ or ""
    assert [docstring.index(f"* ``{m}``") for m in ORDER] == sorted(docstring.index(f"* ``{m}``") for m in ORDER)
    for i, module in enumerate(ORDER):
        later = hook_imports(module) - set(ORDER[:i])
        assert not later, f"sfu/hooks/{module}.py imports {sorted(later)}, listed after it (an import cycle waits)"
