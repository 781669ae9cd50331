"""Generate ``reference/cli.md`` from the Typer app: every command and sub-command, its help,
usage and options, read from the click command tree that Typer builds (mkdocs-gen-files)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mkdocs_gen_files
import typer

# Describe this checkout's package, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from forex_diffusion.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "forex-diffusion"


def walk(command: Any, path: tuple[str, ...], parent: Any = None) -> Iterator[tuple[Any, Any]]:
    """(command, its click context) for ``command`` and, depth first, all its sub-commands."""
    ctx = command.make_context(path[-1], [], resilient_parsing=True, parent=parent)
    ctx.info_name = path[-1]
    yield command, ctx
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from walk(sub, (*path, name), ctx)


def _cell(text: str) -> str:
    return text.replace(str(ROOT) + "/", "").replace("|", "\\|").replace("\n", " ")


def render(command: Any, ctx: Any) -> str:
    path = ctx.command_path
    lines = [f"## `{path}` {{ #{slug(path)} }}", ""]
    if command.help:
        lines += [_cell(command.help).strip(), ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    rows = [p.get_help_record(ctx) for p in command.get_params(ctx)]
    rows = [r for r in rows if r is not None and r[0] != "--help"]
    if rows:
        lines += ["| Argument / option | Meaning |", "|---|---|"]
        lines += [f"| `{_cell(opts)}` | {_cell(text)} |" for opts, text in rows]
        lines.append("")
    subs = sorted(n for n, c in getattr(command, "commands", {}).items() if not c.hidden)
    if subs:
        links = [f"[`{path} {n}`](#{slug(f'{path} {n}')})" for n in subs]
        lines += ["Sub-commands: " + ", ".join(links), ""]
    return "\n".join(lines)


def slug(path: str) -> str:
    """The anchor of a command's heading (the toc extension's default slug of its path)."""
    return path.replace(" ", "-")


def main() -> None:
    root = typer.main.get_command(app)
    parts = [
        "# CLI reference",
        "",
        "Generated from the Typer app `forex_diffusion.cli.main:app` when the site is built, so it",
        "lists exactly the commands and options of this version. `forex-diffusion COMMAND --help`",
        "prints the same text in the terminal.",
        "",
    ]
    for command, ctx in walk(root, (PROGRAM,)):
        parts.append(render(command, ctx))
    with mkdocs_gen_files.open("reference/cli.md", "w") as fh:
        fh.write("\n".join(parts))


main()
