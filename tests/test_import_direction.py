"""The data flows one way: no module imports a layer that comes after its own.

store (data) → features → dataset → model → registry → training / inference → evaluation
→ ensemble → scale → ui → service → cli (the command line starts the service). Leaf modules (errors, time helpers, file I/O, settings, config, the
forecast type) may be imported from anywhere and import no layer themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "forex_diffusion"

# rank of each top-level part of the package; equal ranks may not import each other
LAYERS: dict[str, int] = {
    "data": 1,
    "features": 2,
    "dataset": 3,
    "models": 4,
    "registry": 5,
    "training": 6,
    "inference": 6,
    "evaluation": 7,
    "ensemble": 8,
    "scale": 9,
    "ui": 10,
    "service": 11,
    "cli": 12,
}
LEAF = 0
# packages that import no layer (pure functions and types any layer may use)
LEAF_PACKAGES = {"config", "calibration"}
# public-API aliases kept for SPEC §2; they re-export a later layer on purpose
ALIASES = {"data/sssd_dataset.py"}
# (module, import) pairs allowed against the flow, each a SPEC §2 entry point: the documented
# ``python -m forex_diffusion.training.train_sssd`` runs the same Typer command as the CLI
ENTRY_POINTS = {("training/train_sssd.py", "forex_diffusion.cli.train_cmd")}


def _part(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] != "forex_diffusion" or len(bits) < 2:
        return None
    return bits[1]


def _rank(part: str) -> int:
    return LAYERS.get(part, LEAF)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_layers_cover_every_package() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unplaced = packages - set(LAYERS) - LEAF_PACKAGES
    assert not unplaced, f"packages without a layer: {sorted(unplaced)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_against_the_flow(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    if str(rel) in ALIASES:
        return
    own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    own_rank = _rank(own)
    bad = []
    for line, module in _imports(path):
        part = _part(module)
        if part is None or part == own or (str(rel), module.rsplit(".", 1)[0]) in ENTRY_POINTS:
            continue
        if (str(rel), module) in ENTRY_POINTS:
            continue
        rank = _rank(part)
        if rank == LEAF:
            continue
        if own_rank == LEAF:
            bad.append(f"{rel}:{line} leaf module imports {module}")
        elif rank > own_rank or (rank == own_rank and part != own):
            bad.append(f"{rel}:{line} ({own}) imports {module} ({part})")
    assert not bad, "\n".join(bad)


def test_readme_folder_map_names_every_part_of_the_package() -> None:
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    block = readme[readme.index("src/forex_diffusion/\n") :]
    block = block[: block.index("```")]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines()[1:] if line.strip()}
    parts = {
        p.name
        for p in PACKAGE.iterdir()
        if (p.is_dir() and not p.name.startswith("__"))
        or (p.suffix == ".py" and p.stem != "__init__")
    }
    outside = {"configs", "benchmarks", "docs", "examples", "tests"}  # repository folders
    assert parts <= listed, f"missing from the README folder map: {sorted(parts - listed)}"
    assert listed <= parts | outside, f"in the README, not in the package: {sorted(listed - parts)}"
