"""The package's shape holds: stages import downward only, and no module imports itself in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parents[1] / "rag"
# Lower layers first; a module may import its own layer and those below it, never one above.
LAYERS = (
    ("rag.config", "rag.errors", "rag.records", "rag.text"),
    ("rag.documents",),
    ("rag.index",),
    ("rag.answer",),
    ("rag.whole",),
    ("rag.pipeline", "rag.console"),
    ("rag.evaluation", "rag.bench"),
    ("rag.cli", "rag.ui", "rag"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(RAG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every rag module a file imports, at the top or inside a function, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rag"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "rag":
                continue
            modules = {target}
            if not node.module or (RAG.parent / target.replace(".", "/")).is_dir():
                # `from . import prompt` or `from .answer import prompt` names modules.
                modules = {f"{target}.{a.name}" for a in node.names
                           if (RAG.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists()} or {
                    target}
            found |= modules
    return found


def layer(module: str) -> int:
    best = None
    for n, names in enumerate(LAYERS):
        for prefix in names:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (n, prefix)
    assert best, f"{module} is in no layer: add its folder to LAYERS"
    return best[0]


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in RAG.rglob("*.py")}


def test_every_stage_imports_only_its_own_layer_and_those_below():
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    edges = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges.get(m, ())):
            if t not in edges:
                continue
            if state.get(t) == 1:
                circles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif not state.get(t):
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if not state.get(m):
            visit(m, [m])
    assert circles == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The two checks above can fail: a fake package with one of each is caught."""
    pkg = tmp_path / "rag"
    (pkg / "documents").mkdir(parents=True)
    (pkg / "answer").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "documents" / "__init__.py").write_text("")
    (pkg / "answer" / "__init__.py").write_text("")
    (pkg / "documents" / "chunk.py").write_text("from ..answer.reader import x\n")
    (pkg / "answer" / "reader.py").write_text("def f():\n    from .cite import y\n")
    (pkg / "answer" / "cite.py").write_text("from . import reader\n")
    monkeypatch.setattr(__import__(__name__), "RAG", pkg)
    edges = graph()
    assert "rag.answer.reader" in edges["rag.documents.chunk"]
    assert edges["rag.answer.cite"] == {"rag.answer.reader"} and edges["rag.answer.reader"] == {"rag.answer.cite"}
    assert layer("rag.answer.reader") > layer("rag.documents.chunk")
