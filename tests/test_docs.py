"""The documentation site and the example notebooks (the building and executing tests are slow).

* every notebook in ``examples/`` executes without error within a time limit;
* ``mkdocs build --strict`` succeeds, and the generated references cover the code: every public
  function and class of the public modules in the API reference, every command of the Typer app
  in the CLI reference, every configuration key in the configuration reference. The expected
  lists are derived here from the code (by import and introspection), independently of the
  generator scripts in ``docs/gen``.
"""

from __future__ import annotations

import html
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import typer
from nbclient import NotebookClient

import forex_diffusion
from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import config_json_schema

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
NOTEBOOK_TIMEOUT_S = 900
# Alembic's environment and revisions run inside Alembic (importing env.py outside it fails).
PRIVATE_PACKAGES = ("forex_diffusion.registry.migrations",)


def _env() -> dict[str, str]:
    """The test's environment, with this checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("DISABLE_MKDOCS_2_WARNING", "true")
    env.setdefault("NO_MKDOCS_2_WARNING", "1")
    return env


# --------------------------------------------------------------------------- notebooks


def test_examples_exist() -> None:
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's mkdtemp work folder goes here
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=NOTEBOOK_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    assert all(
        cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"
    ), "a code cell did not run"


# --------------------------------------------------------------------------- site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built with ``mkdocs build --strict`` (a warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return out


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _anchors(folder: Path) -> set[str]:
    """Every ``id="..."`` of every page under ``folder``."""
    ids: set[str] = set()
    for page in folder.rglob("*.html"):
        ids.update(html.unescape(m) for m in re.findall(r'\bid="([^"]+)"', _text(page)))
    return ids


def public_modules() -> list[str]:
    """Every importable module of the package without a ``_``-prefixed part."""
    names = [forex_diffusion.__name__]
    for info in pkgutil.walk_packages(forex_diffusion.__path__, forex_diffusion.__name__ + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if any(info.name == p or info.name.startswith(p + ".") for p in PRIVATE_PACKAGES):
            continue
        names.append(info.name)
    return sorted(names)


def public_objects(module_name: str) -> list[str]:
    """Dotted paths of the public functions and classes defined in ``module_name``: the names
    in ``__all__`` if it has one, else every name without a leading ``_``; objects re-exported
    from another module are counted where they are defined."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    public = set(public_modules())
    found = []
    for name in names:
        obj: Any = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        home = getattr(obj, "__module__", "")
        qualname = obj.__qualname__
        if (home == module_name or home in public) and not qualname.startswith("_"):
            found.append(f"{home}.{qualname}")
    return found


@pytest.mark.slow
def test_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    for page in ("getting-started", "troubleshooting", "reference/cli", "reference/config"):
        assert (site / page / "index.html").is_file(), page


@pytest.mark.slow
def test_api_reference_has_every_public_module_function_and_class(site: Path) -> None:
    ids = _anchors(site / "reference" / "api")
    modules = public_modules()
    expected = sorted({path for name in modules for path in public_objects(name)})
    assert len(expected) > 50, expected
    missing_modules = [m for m in modules if m not in ids]
    missing = [path for path in expected if path not in ids]
    assert not missing_modules, missing_modules
    assert not missing, missing


def _commands(command: Any, path: tuple[str, ...]) -> list[str]:
    found = [" ".join(path)]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found += _commands(sub, (*path, name))
    return found


@pytest.mark.slow
def test_cli_reference_has_every_command_and_option(site: Path) -> None:
    page = html.unescape(_text(site / "reference" / "cli" / "index.html"))
    root = typer.main.get_command(app)
    commands = _commands(root, ("forex-diffusion",))
    assert len(commands) > 10, commands
    ids = _anchors(site / "reference" / "cli")
    missing = [c for c in commands if c.replace(" ", "-") not in ids]
    assert not missing, missing
    options = {
        opt
        for c in commands[1:]
        for p in _resolve(root, c.split()[1:]).params
        for opt in p.opts
        if opt.startswith("--") and opt != "--help"
    }
    assert not [o for o in sorted(options) if o not in page]


def _resolve(root: Any, names: list[str]) -> Any:
    command = root
    for name in names:
        command = command.commands[name]
    return command


def _schema_keys(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> list[str]:
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    keys = []
    for key, child in node.get("properties", {}).items():
        sub = _schema_keys(schema, child, f"{prefix}{key}.")
        keys += sub or [f"{prefix}{key}"]
    return keys


def test_test_files_named_in_the_docs_exist() -> None:
    """The pages cite test files as evidence (e.g. for leakage); a renamed file must be cited anew."""
    cited = {
        name
        for page in (ROOT / "docs").rglob("*.md")
        for name in re.findall(r"tests/(test_\w+\.py)", _text(page))
    }
    assert len(cited) > 5, cited
    assert not [n for n in sorted(cited) if not (ROOT / "tests" / n).is_file()]


@pytest.mark.slow
def test_config_reference_has_every_key(site: Path) -> None:
    page = html.unescape(_text(site / "reference" / "config" / "index.html"))
    schema = config_json_schema()
    keys = _schema_keys(schema, schema)
    assert "training.epochs" in keys
    missing = [k for k in keys if f"<code>{k}</code>" not in page]
    assert not missing, missing
