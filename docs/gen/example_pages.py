"""Copy the notebooks of ``examples/`` into the site (rendered by mkdocs-jupyter, not executed
at build time unless DOCS_EXECUTE_NOTEBOOKS=true) and list them in ``examples/index.md``.

Links in the notebooks' Markdown are written for Jupyter (``02_x.ipynb``, ``../guide/y.md``);
the site serves each notebook as a folder (``examples/02_x/``), so the copies get site links.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
# a relative Markdown link target: no scheme, no leading slash, ending in .ipynb or .md (+anchor)
_LINK = re.compile(r"\]\((?![a-z]+:|/|#)([^)#\s]+)\.(ipynb|md)(#[^)\s]*)?\)")


def site_link(match: re.Match[str]) -> str:
    """``](02_x.ipynb)`` → ``](../02_x/)``; ``](../guide/y.md#a)`` → ``](../../guide/y/#a)``."""
    target, _, anchor = match.group(1), match.group(2), match.group(3) or ""
    if target.endswith("/index") or target == "index":
        target = target[: -len("index")].rstrip("/")
        return f"](../{target}/{anchor})" if target else f"](../{anchor})"
    return f"](../{target}/{anchor})"


def for_site(notebook: dict[str, Any]) -> dict[str, Any]:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"])
            cell["source"] = _LINK.sub(site_link, source)
    return notebook


def title(notebook: dict[str, Any], fallback: str) -> str:
    """The first Markdown heading of the notebook (``fallback`` if it has none)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


paths = sorted((ROOT / "examples").glob("*.ipynb"))
notebooks = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in paths}
titles = {name: title(nb, Path(name).stem) for name, nb in notebooks.items()}
lines = [
    "# Examples",
    "",
    "Notebooks in `examples/` of the repository. Each makes its own data (a seeded synthetic",
    "market), runs on a CPU in a few minutes, and is executed by the test suite",
    "(`tests/test_docs.py`), so a change that breaks one fails CI. Run one with",
    "`jupyter nbconvert --to notebook --execute examples/NAME.ipynb` or open it in Jupyter.",
    "",
]
for name, nb in notebooks.items():
    with mkdocs_gen_files.open(f"examples/{name}", "w") as fh:
        json.dump(for_site(nb), fh, ensure_ascii=False, indent=1)
    lines.append(f"- [{titles[name]}]({name})")
with mkdocs_gen_files.open("examples/index.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
with mkdocs_gen_files.open("examples/SUMMARY.md", "w") as fh:
    fh.write("* [Examples](index.md)\n")
    fh.writelines(f"* [{titles[name]}]({name})\n" for name in notebooks)
