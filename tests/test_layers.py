"""The package's import structure: the layers contract of pyproject.toml holds (import-linter),
no module takes part in an import cycle (grimp: imports at module level and inside functions),
and nothing but spicetool/codecs.py imports the Rust extension."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp  # the `test` extra brings grimp and import-linter

ROOT = Path(__file__).resolve().parents[1]
NATIVE = "spicetool._native"


def test_the_layers_contract_holds() -> None:
    # lint-imports as the command line runs it, on this tree
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                          "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges.get(w, ()))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def test_no_import_cycles() -> None:
    # imports under `if TYPE_CHECKING:` never run: a channel's annotation naming its session and
    # server (which create it) is no cycle
    graph = grimp.build_graph("spicetool", exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    details = [f"{a} -> {b} line {d['line_number']}" for group in cycles for a in group for b in group
               if graph.direct_import_exists(importer=a, imported=b)
               for d in graph.get_import_details(importer=a, imported=b)]
    assert not cycles, "\n".join(details)


def _imports_native(tree: ast.AST, package: str | None) -> list[int]:
    """Lines of `tree` that import spicetool._native (`package`: the module's own package, for
    relative imports)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lines += [node.lineno for a in node.names if a.name == NATIVE or a.name.startswith(NATIVE + ".")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if package is None:
                    continue
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            if base == NATIVE or base.startswith(NATIVE + ".") or (
                    base == "spicetool" and any(a.name == "_native" for a in node.names)):
                lines.append(node.lineno)
    return lines


def test_only_codecs_imports_the_extension() -> None:
    files = [*(ROOT / "spicetool").rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
             *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "rust" / "fuzz").rglob("*.py")]
    assert len(files) > 50
    found = []
    for path in files:
        rel = path.relative_to(ROOT)
        if rel == Path("spicetool/codecs.py"):
            continue
        package = ".".join(rel.parent.parts) if rel.parts[0] == "spicetool" else None
        found += [f"{rel}:{line}" for line in _imports_native(ast.parse(path.read_text(), str(path)), package)]
    assert not found, f"{NATIVE} is imported outside spicetool/codecs.py: {found}"
    # the scan sees the one real import
    assert _imports_native(ast.parse((ROOT / "spicetool" / "codecs.py").read_text()), "spicetool")
