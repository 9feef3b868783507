"""Every module of the package imports alone in a fresh interpreter, and module-level imports form no cycle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rl_i2it

PACKAGE = Path(rl_i2it.__file__).parent


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_level_imports(path: Path, module: str) -> set[str]:
    """The package modules ``path`` imports at load time (not inside functions)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


#: run in a fresh interpreter: third-party libraries are loaded once, then each package module is imported in a
#: forked child that has never imported ``rl_i2it`` (what "alone" means here: no other package module loaded first)
FORK_EACH = r"""
import os, sys, traceback
import numpy, torch  # the slow third-party imports, shared by the children
failures = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failures.append(name)
print("FAILED:" + ",".join(failures))
"""


def test_every_module_imports_alone_in_a_fresh_interpreter():
    names = module_names()
    assert len(names) > 40
    done = subprocess.run([sys.executable, "-c", FORK_EACH, *names], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    failed = done.stdout.strip().rsplit("FAILED:", 1)[-1]
    assert failed == "", f"modules that do not import alone: {failed}\n{done.stderr[-3000:]}"


def test_module_level_imports_have_no_cycle():
    names = set(module_names())
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {m for m in module_level_imports(path, name) if m in names and m != name}
    # a package's submodule importing the package itself is how Python loads it; a cycle is anything else
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, cycles


def test_baselines_import_tasks_never_the_reverse():
    for path in (PACKAGE / "tasks").rglob("*.py"):
        source = path.read_text()
        assert "baselines" not in {part for line in source.splitlines() if line.lstrip().startswith(("from", "import"))
                                   for part in line.replace(".", " ").split()}, path
