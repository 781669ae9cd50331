"""The config's field descriptions are read from attribute docstrings when the schema is asked
for (``config.field_docs``), not at import: the schema must be what pydantic's own
``use_attribute_docstrings`` gives."""

from __future__ import annotations

import inspect
import sys

from pydantic import BaseModel, ConfigDict, Field

from forex_diffusion.config.field_docs import attribute_docstrings, json_schema_with_field_docs


class _Inner(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    depth: int = 2
    """How deep.

        Indented continuation, cleaned like a docstring."""
    width: float = Field(1.5, description="given explicitly")
    """Pydantic keeps an explicit description over the docstring."""
    plain: str = "x"


class _Outer(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    inner: _Inner = _Inner()
    """The inner section (a $ref with a description beside it)."""
    rate: float = 0.1
    "One line."


def _outer_without_docstrings() -> type[BaseModel]:
    """``_Outer`` and ``_Inner`` built without the option (what the config's sections are
    now)."""
    inner = type(
        "_Inner",
        (BaseModel,),
        {
            "__module__": __name__,
            "__annotations__": {"depth": int, "width": float, "plain": str},
            "depth": 2,
            "width": Field(1.5, description="given explicitly"),
            "plain": "x",
        },
    )
    return type(
        "_Outer",
        (BaseModel,),
        {
            "__module__": __name__,
            "__annotations__": {"inner": inner, "rate": float},
            "inner": inner(),
            "rate": 0.1,
        },
    )


def test_field_docs_give_the_schema_that_pydantic_extracts_at_class_creation() -> None:
    expected = _Outer.model_json_schema()
    bare = _outer_without_docstrings()
    assert bare.model_json_schema() != expected  # the option matters for these classes
    source = inspect.getsource(sys.modules[__name__])
    assert json_schema_with_field_docs(bare, attribute_docstrings(source)) == expected


def test_the_config_sections_do_not_extract_docstrings_at_import() -> None:
    from forex_diffusion.config.sssd_config import SSSDConfig, config_json_schema

    assert not SSSDConfig.model_config.get("use_attribute_docstrings")
    seed = config_json_schema()["$defs"]["InferenceConfig"]["properties"]["seed"]
    assert "bit-identical" in seed["description"]
