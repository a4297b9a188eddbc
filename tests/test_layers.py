"""The package's import structure: the layers contract of pyproject.toml holds (import-linter),
no module takes part in an import cycle (grimp: imports at module level, inside functions and
under TYPE_CHECKING),
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
    # imports under `if TYPE_CHECKING:` count too: a circle of annotations is still a circle
    graph = grimp.build_graph("spicetool", exclude_type_checking_imports=False, cache_dir=None)
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


PROTOCOL_ATTRS = {"type_id", "channel_type", "image_type", "surface_id", "rop_descriptor", "bitmap_format"}


def _protocol_numbers(tree: ast.AST) -> list[int]:
    """Lines comparing a protocol field with a bare number (or a tuple/set of them)."""
    def bare(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return type(node.value) is int and node.value not in (0,)
        return isinstance(node, (ast.Tuple, ast.Set, ast.List)) and any(bare(e) for e in node.elts)

    def field(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr in PROTOCOL_ATTRS or \
            isinstance(node, ast.Name) and node.id in PROTOCOL_ATTRS
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(field(s) for s in sides) and any(bare(s) for s in sides):
                lines.append(node.lineno)
    return lines


def test_no_bare_protocol_numbers_outside_the_stack() -> None:
    # `msg.type_id == 1  # ACK_SYNC` is how names got lost before stack/enums.py
    found = []
    for path in sorted((ROOT / "spicetool").rglob("*.py")):
        if "stack" in path.relative_to(ROOT / "spicetool").parts[:1]:
            continue
        found += [f"{path.relative_to(ROOT)}:{n}" for n in _protocol_numbers(ast.parse(path.read_text()))]
    assert not found, found


def test_the_protocol_number_check_finds_one() -> None:
    assert _protocol_numbers(ast.parse("if msg.type_id in (4, 5):\n    pass\nx = ch.channel_type == 2")) == [1, 3]
    assert _protocol_numbers(ast.parse("if msg.type_id == Msgc.ACK:\n    pass")) == []
