"""Field descriptions from attribute docstrings, read only when a JSON schema is asked for.

A config field is documented by the string literal right under it (the convention pydantic's
``use_attribute_docstrings`` reads). Pydantic extracts those at class creation, which locates
each class's source through ``inspect`` on every import of the config; every command pays it,
though only ``config schema``, the UI's form and the docs read the descriptions. Here the module
source is parsed when a schema is first asked for, and the result is the same JSON schema.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from pydantic import BaseModel


def attribute_docstrings(source: str) -> dict[str, dict[str, str]]:
    """Class name → {field name: its docstring, cleaned as ``inspect.cleandoc``} for the
    top-level classes of ``source``: an annotated assignment followed by a string literal."""
    out: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = {}
        for stmt, after in pairwise(node.body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
        out[node.name] = docs
    return out


def json_schema_with_field_docs(
    model: type[BaseModel], docs: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """``model.model_json_schema()`` with each property's ``description`` taken from ``docs``
    (``attribute_docstrings`` of the module that defines ``model`` and its sections); a
    description given explicitly (``Field(description=...)``) is kept, as pydantic does."""
    schema = model.model_json_schema()
    for name, node in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
        for field, prop in node.get("properties", {}).items():
            doc = docs.get(name, {}).get(field)
            if doc and "description" not in prop:
                prop["description"] = doc
    return schema
