"""The dependency rules of ARCHITECTURE.md, checked on the source's import statements."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "clinicos"

# Top-level packages that are not bounded contexts.
KERNEL = "kernel"
PLATFORM = "platform"
COMPOSITION = {"main", "bootstrap", "cli", "config"}
CONSOLE = "console"
# Files of a context allowed to import FastAPI/Starlette (the HTTP edge): routes.py, any
# <family>_routes.py a context splits its routes into, and dependencies.py.
HTTP_EDGE_FILES = {"routes.py", "dependencies.py"}
WEB_PACKAGES = ("fastapi", "starlette")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(me, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(me, target, node.lineno))
    return found


def all_imports() -> list[Import]:
    return [imp for path in sorted(SRC.rglob("*.py")) for imp in imports_of(path)]


def top_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "clinicos" else None


def contexts() -> set[str]:
    names = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names - {KERNEL, PLATFORM}


def violations_of_rules(imports: list[Import], context_names: set[str]) -> list[str]:
    bad: list[str] = []
    for imp in imports:
        src_top, dst_top = top_of(imp.module), top_of(imp.target)
        where = f"{imp.module}:{imp.line} imports {imp.target}"
        if src_top == KERNEL and dst_top is not None and dst_top != KERNEL:
            bad.append(f"{where}: kernel imports nothing else from clinicos")
        if src_top == PLATFORM and dst_top in context_names:
            bad.append(f"{where}: platform must not import a bounded context")
        if dst_top == CONSOLE and src_top not in {CONSOLE, *COMPOSITION}:
            bad.append(f"{where}: no context imports console")
        if (
            src_top in context_names
            and dst_top in context_names
            and src_top != dst_top
            and imp.target != f"clinicos.{dst_top}"
        ):
            bad.append(f"{where}: import another context only through its package root")
        file_name = imp.module.rpartition(".")[2] + ".py"
        if (
            src_top in context_names
            and src_top != CONSOLE
            and imp.target.split(".")[0] in WEB_PACKAGES
            and file_name not in HTTP_EDGE_FILES
            and not file_name.endswith("_routes.py")
        ):
            bad.append(f"{where}: only routes import FastAPI/Starlette inside a context")
        if src_top in (KERNEL,) and imp.target.split(".")[0] in (*WEB_PACKAGES, "sqlalchemy"):
            bad.append(f"{where}: kernel depends on no web or database framework")
    return bad


def test_source_tree_when_scanned_respects_dependency_rules() -> None:
    imports = all_imports()
    assert len(imports) > 50, "the scanner found suspiciously few imports"
    assert violations_of_rules(imports, contexts()) == []


def test_rules_when_violated_are_reported() -> None:
    # The checker itself must catch each kind of violation, or the test above proves nothing.
    ctx = {"records", "cds", "console"}
    samples = [
        Import("clinicos.kernel.errors", "clinicos.records.models", 1),
        Import("clinicos.platform.db.engine", "clinicos.records", 2),
        Import("clinicos.records.services", "clinicos.console.views", 3),
        Import("clinicos.records.services", "clinicos.cds.engine.rules", 4),
        Import("clinicos.records.services", "fastapi", 5),
        Import("clinicos.kernel.uow", "sqlalchemy.orm", 6),
    ]
    for sample in samples:
        assert violations_of_rules([sample], ctx), f"not reported: {sample}"
    allowed = [
        Import("clinicos.records.routes", "fastapi", 1),
        Import("clinicos.records.services", "clinicos.cds", 2),
        Import("clinicos.records.services", "clinicos.kernel.errors", 3),
        Import("clinicos.console.views", "clinicos.records", 4),
    ]
    assert violations_of_rules(allowed, ctx) == []
