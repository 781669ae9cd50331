"""Generate ``reference/config.md``: every configuration key from the JSON schema of
``SSSDConfig`` (type, constraints, value in ``default_config.yaml``, the comment beside it in
that file), then the presets and asset configs shipped beside it (mkdocs-gen-files)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mkdocs_gen_files

# Describe this checkout's package, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    config_json_schema,
    load_sssd_config,
)

ROOT = Path(__file__).resolve().parents[2]
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?P<rest>.*)$")


def yaml_comments(text: str) -> dict[str, str]:
    """{dotted key: the ``#`` comment on its line (and comment-only lines right below it)}."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if last is not None and line.startswith(" "):
                comments[last] = (comments.get(last, "") + " " + stripped.lstrip("# ")).strip()
            continue
        match = _KEY.match(line)
        if not match:
            last = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        last = ".".join(k for _, k in stack)
        rest = match["rest"]
        if "#" in rest:
            comments[last] = rest.split("#", 1)[1].strip()
    return comments


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target = schema["$defs"][ref.rsplit("/", 1)[1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def type_text(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """A short type description of a schema node: ``int ≥ 1``, ``one of: a, b``, ``list[int]``."""
    node = _resolve(schema, node)
    if "anyOf" in node:
        return " or ".join(type_text(schema, n) for n in node["anyOf"])
    if "enum" in node:
        return "one of: " + ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type", "any")
    names = {
        "integer": "int",
        "number": "float",
        "string": "str",
        "boolean": "bool",
        "null": "null",
    }
    if kind == "array":
        items = node.get("items")
        text = f"list[{type_text(schema, items)}]" if items else "list"
    elif kind == "object":
        values = node.get("additionalProperties")
        text = f"map[str, {type_text(schema, values)}]" if isinstance(values, dict) else "mapping"
    else:
        text = names.get(kind, kind)
        if node.get("format") == "date":
            text = "date (YYYY-MM-DD)"
    bounds = [
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("multipleOf", "multiple of"),
        ("minLength", "length ≥"),
        ("minItems", "items ≥"),
        ("pattern", "matches"),
    ]
    extra = [f"{sign} {node[key]}" for key, sign in bounds if key in node]
    return text + (" " + ", ".join(extra) if extra else "")


def walk_keys(
    schema: dict[str, Any], node: dict[str, Any], prefix: str
) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(dotted key, schema node, required) for every leaf key below ``node``."""
    node = _resolve(schema, node)
    required = set(node.get("required", ()))
    for key, child in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        resolved = _resolve(schema, child)
        if resolved.get("type") == "object" and "properties" in resolved:
            yield from walk_keys(schema, child, dotted + ".")
        else:
            yield dotted, child, key in required


def lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    schema = config_json_schema()
    defaults = load_sssd_config(DEFAULT_CONFIG_PATH).to_dict()
    comments = yaml_comments(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    default_rel = DEFAULT_CONFIG_PATH.relative_to(ROOT).as_posix()
    out = [
        "# Configuration reference",
        "",
        "Generated from `forex_diffusion.config.sssd_config.config_json_schema()` (the pydantic",
        f"model that validates every config) and `{default_rel}` when the site is",
        "built. Unknown keys are errors. *Required* keys have no built-in default: they must come",
        "from a YAML layer. `forex-diffusion config schema` prints the same schema as JSON.",
        "",
    ]
    sections: dict[str, list[tuple[str, dict[str, Any], bool]]] = {}
    for dotted, node, required in walk_keys(schema, schema, ""):
        sections.setdefault(dotted.split(".")[0] if "." in dotted else "(top level)", []).append(
            (dotted, node, required)
        )
    for section, rows in sections.items():
        out += [f"## `{section}`" if section != "(top level)" else "## Top level", ""]
        described = _resolve(schema, schema["properties"].get(section, {})).get("description")
        if described:
            out += [described.strip(), ""]
        out += [
            "| Key | Type | Required | In the default config | Notes |",
            "|---|---|---|---|---|",
        ]
        for dotted, node, required in rows:
            value = json.dumps(lookup(defaults, dotted), ensure_ascii=False)
            note = _resolve(schema, node).get("description") or comments.get(dotted, "")
            out.append(
                f"| `{dotted}` | {_cell(type_text(schema, node))} | {'yes' if required else ''} "
                f"| `{_cell(value)}` | {_cell(note)} |"
            )
        out.append("")
    folder = DEFAULT_CONFIG_PATH.parent.relative_to(ROOT).as_posix()
    out += [f"## Files shipped in `{folder}` {{ #presets }}", ""]
    for path in sorted(DEFAULT_CONFIG_PATH.parent.glob("*.yaml")):
        rel = path.relative_to(ROOT).as_posix()
        out += [f"### `{rel}`", "", "```yaml", path.read_text(encoding="utf-8").rstrip(), "```", ""]
    return "\n".join(out)


with mkdocs_gen_files.open("reference/config.md", "w") as fh:
    fh.write(render())
