"""Generate ``reference/errors.md``: every error class of ``forex_diffusion.errors`` and every
message the package builds with one of them, found by reading the source (mkdocs-gen-files).

Each class links to its section of the hand-written troubleshooting page; with
``validation.anchors: warn`` a class without such a section fails the strict build.
"""

from __future__ import annotations

import ast
import html
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mkdocs_gen_files

# Describe this checkout's package, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from forex_diffusion import errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "forex_diffusion"


def error_classes() -> list[type[BaseException]]:
    """The exception classes defined in ``forex_diffusion.errors``, in source order."""
    found = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]
    return sorted(found, key=lambda c: inspect.getsourcelines(c)[1])


@dataclass(frozen=True)
class Message:
    error: str
    template: str
    module: str
    function: str
    line: int


def _template(node: ast.expr | None) -> str:
    """The message text with each interpolated expression shown as ``{expr}``."""
    if node is None:
        return "(no message)"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                conversion = f"!{chr(value.conversion)}" if value.conversion > 0 else ""
                parts.append("{" + ast.unparse(value.value) + conversion + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template(node.left) + _template(node.right)
    return "{" + ast.unparse(node) + "}"


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """(qualified function name, node) of every function, and ``<module>`` for the rest."""
    yield "<module>", tree

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                yield from visit(child, name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def messages(class_names: set[str]) -> list[Message]:
    """Every call ``SomeError(message, ...)`` of a package error class in ``src/``."""
    found: dict[tuple[str, int], Message] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # innermost function wins: functions are visited outer first, so later entries overwrite
        for function, scope in _functions(tree):
            for node in ast.walk(scope):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in class_names
                ):
                    found[(module, node.lineno)] = Message(
                        node.func.id,
                        _template(node.args[0] if node.args else None),
                        module,
                        function,
                        node.lineno,
                    )
    return sorted(found.values(), key=lambda m: (m.error, m.module, m.line))


_MARKDOWN = {c: f"&#{ord(c)};" for c in "[]*_`\\|{}#"}


def _literal(text: str) -> str:
    """``text`` as inline HTML that Markdown leaves alone (no links, emphasis or table cells)."""
    escaped = html.escape(text.replace("\n", " "), quote=False)
    return "".join(_MARKDOWN.get(c, c) for c in escaped)


def anchor(name: str) -> str:
    return name.lower()


def render() -> str:
    classes = error_classes()
    found = messages({c.__name__ for c in classes})
    out = [
        "# Error messages",
        "",
        "Generated from the source when the site is built: the error classes of",
        "`forex_diffusion.errors` and every message the package constructs with them (an",
        "`{expression}` is filled in at run time). The command line prints these messages as",
        "`error: ...` and exits with status 2. What each kind of error means and how to fix it:",
        "[Troubleshooting](../troubleshooting.md).",
        "",
    ]
    for cls in classes:
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        doc = inspect.getdoc(cls) or ""
        out += [
            f"## `{cls.__name__}`",
            "",
            f"{doc}",
            "",
            f"Subclass of {bases}. "
            f"[What it means and the fix](../troubleshooting.md#{anchor(cls.__name__)}).",
            "",
        ]
        rows = [m for m in found if m.error == cls.__name__]
        if not rows:
            continue
        out += [f"{len(rows)} message(s):", "", "| Message | Raised in |", "|---|---|"]
        for m in rows:
            text = _literal(m.template)
            where = f"`{m.module}`" + (f" `{m.function}`" if m.function != "<module>" else "")
            out.append(f"| <code>{text}</code> | {where} |")
        out.append("")
    return "\n".join(out)


with mkdocs_gen_files.open("reference/errors.md", "w") as fh:
    fh.write(render())
