"""Generate one API reference page per public module of ``src/forex_diffusion`` (mkdocs-gen-files).

A module is public unless a part of its dotted path starts with ``_`` (``__init__`` aside) or
it lies under one of :data:`PRIVATE_PACKAGES`. Pages go to ``reference/api/<dotted.path>.md``
and their navigation to ``reference/api/SUMMARY.md`` (literate-nav).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "forex_diffusion"
# Alembic's migration environment and revisions run inside Alembic, not as an API.
PRIVATE_PACKAGES = ("forex_diffusion.registry.migrations",)


def public_modules() -> list[tuple[str, Path, bool]]:
    """(dotted name, source file, is_package) of every public module, sorted by name."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        if any(p.startswith("_") for p in parts):
            continue
        if any(name == p or name.startswith(p + ".") for p in PRIVATE_PACKAGES):
            continue
        found.append((name, path, is_package))
    return sorted(found)


def defined_here(path: Path) -> list[str]:
    """Public functions and classes defined in the file itself (not re-exported imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [n.name for n in tree.body if isinstance(n, kinds) and not n.name.startswith("_")]


def main() -> None:
    nav = mkdocs_gen_files.Nav()
    modules = public_modules()
    for name, path, is_package in modules:
        parts = tuple(name.split("."))
        doc_path = Path("reference", "api", *parts[1:], "index.md" if is_package else "")
        if not is_package:
            doc_path = Path("reference", "api", *parts[1:-1], f"{parts[-1]}.md")
        if parts == ("forex_diffusion",):
            doc_path = Path("reference", "api", "index.md")
        nav[parts] = doc_path.relative_to(Path("reference", "api")).as_posix()
        with mkdocs_gen_files.open(doc_path, "w") as fh:
            if is_package:
                # a package page shows its own definitions; re-exports have their module's page
                own = defined_here(path)
                members = "[" + ", ".join(own) + "]" if own else "false"
                fh.write(f"::: {name}\n    options:\n      members: {members}\n\n")
                children = [
                    m
                    for m, _, _ in modules
                    if m.startswith(name + ".") and m.count(".") == name.count(".") + 1
                ]
                if children:
                    fh.write("Modules:\n\n")
                    for child in children:
                        fh.write(f"- [`{child}`][{child}]\n")
            else:
                fh.write(f"::: {name}\n")
    with mkdocs_gen_files.open("reference/api/SUMMARY.md", "w") as fh:
        fh.writelines(nav.build_literate_nav())


main()
