"""Copy the notebooks of ``examples/`` into the site (rendered by mkdocs-jupyter, not executed
at build time unless DOCS_EXECUTE_NOTEBOOKS=true) and list them in ``examples/index.md``."""

from __future__ import annotations

import json
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]


def title(path: Path) -> str:
    """The first Markdown heading of the notebook (its file name if it has none)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


notebooks = sorted((ROOT / "examples").glob("*.ipynb"))
lines = [
    "# Examples",
    "",
    "Notebooks in `examples/` of the repository. Each makes its own data (a seeded synthetic",
    "market), runs on a CPU in a few minutes, and is executed by the test suite",
    "(`tests/test_docs.py`), so a change that breaks one fails CI. Run one with",
    "`jupyter nbconvert --to notebook --execute examples/NAME.ipynb` or open it in Jupyter.",
    "",
]
for nb in notebooks:
    with mkdocs_gen_files.open(f"examples/{nb.name}", "wb") as fh:
        fh.write(nb.read_bytes())
    lines.append(f"- [{title(nb)}]({nb.name})")
with mkdocs_gen_files.open("examples/index.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
with mkdocs_gen_files.open("examples/SUMMARY.md", "w") as fh:
    fh.write("* [Examples](index.md)\n")
    fh.writelines(f"* [{title(nb)}]({nb.name})\n" for nb in notebooks)
