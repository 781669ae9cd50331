"""The search space of ``tune``: dotted keys of the configuration, each with a distribution,
checked against the strict configuration before any trial runs.

YAML (``--space space.yaml``)::

    training.learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
    model.encoder.dropout: {type: uniform, low: 0.0, high: 0.3}
    model.head.hidden_dim: {type: choice, values: [32, 48, 64]}
    model.encoder.n_layers: {type: randint, low: 1, high: 4}      # high exclusive
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forex_diffusion.config.sssd_config import SSSDConfig, parse_yaml
from forex_diffusion.errors import ConfigError

Kind = Literal["uniform", "loguniform", "randint", "choice"]


class Dimension(BaseModel):
    """One searched key: a range (``low``/``high``) or ``values`` to choose from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Kind
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> Dimension:
        if self.type == "choice":
            if self.values is None or self.low is not None or self.high is not None:
                raise ValueError("choice takes values (and no low/high)")
        elif self.low is None or self.high is None or self.values is not None:
            raise ValueError(f"{self.type} takes low and high (and no values)")
        elif not self.low < self.high:
            raise ValueError("low must be smaller than high")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    def probes(self) -> list[Any]:
        """The values to validate against the config: every choice, or both ends."""
        if self.values is not None:
            return list(self.values)
        assert self.low is not None and self.high is not None
        if self.type == "randint":
            return [int(self.low), int(self.high) - 1]
        return [self.low, self.high]

    def tune_domain(self) -> Any:
        from ray import tune

        if self.type == "choice":
            return tune.choice(list(self.values or ()))
        assert self.low is not None and self.high is not None
        if self.type == "randint":
            return tune.randint(int(self.low), int(self.high))
        if self.type == "loguniform":
            return tune.loguniform(self.low, self.high)
        return tune.uniform(self.low, self.high)


DEFAULT_SPACE: dict[str, Dimension] = {
    "training.learning_rate": Dimension(type="loguniform", low=1e-4, high=3e-3),
    "training.ssm_learning_rate": Dimension(type="loguniform", low=3e-4, high=3e-3),
    "training.weight_decay": Dimension(type="loguniform", low=1e-4, high=0.1),
    "model.encoder.dropout": Dimension(type="uniform", low=0.0, high=0.3),
}


@dataclass(frozen=True)
class SearchSpace:
    """Validated dimensions by dotted config key."""

    dimensions: dict[str, Dimension]

    def tune_space(self) -> dict[str, Any]:
        return {key: dim.tune_domain() for key, dim in self.dimensions.items()}


def override_text(key: str, value: Any) -> str:
    """A dotted override whose value YAML reads back as ``value``."""
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def apply_params(config: SSSDConfig, params: dict[str, Any]) -> SSSDConfig:
    """``config`` with the searched values set (validated again)."""
    return config.with_overrides([override_text(k, v) for k, v in sorted(params.items())])


def load_search_space(path: Path | None, base: SSSDConfig) -> SearchSpace:
    """The space in ``path`` (or ``DEFAULT_SPACE``), every key and probe value checked by the
    strict configuration on top of ``base``.

    Raises:
        ConfigError: unreadable YAML, a malformed dimension, an unknown key or a value the
            configuration rejects (all problems listed).
    """
    dims = DEFAULT_SPACE if path is None else _read(path)
    if not dims:
        raise ConfigError(f"{path}: the search space is empty")
    problems: list[str] = []
    for key, dim in dims.items():
        section = key.split(".", 1)[0]
        if section not in SSSDConfig.model_fields or "." not in key:
            problems.append(f"{key}: not a key of the configuration (section.key)")
            continue
        if key.split(".")[-1] not in _leaf_keys(base, key):
            problems.append(f"{key}: unknown key of the configuration")
            continue
        for value in dim.probes():
            try:
                apply_params(base, {key: value})
            except ConfigError as exc:
                problems.append(f"{key}={value!r}: {str(exc).splitlines()[-1].strip()}")
    if problems:
        raise ConfigError(f"search space {path or '(default)'}:\n  " + "\n  ".join(problems))
    return SearchSpace(dict(dims))


def _leaf_keys(base: SSSDConfig, key: str) -> set[str]:
    node: Any = base.to_dict()
    for part in key.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return set(node) if isinstance(node, dict) else set()


def _read(path: Path) -> dict[str, Dimension]:
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must map dotted keys to dimensions")
    dims: dict[str, Dimension] = {}
    problems: list[str] = []
    for key, spec in data.items():
        try:
            dims[str(key)] = Dimension.model_validate(spec)
        except ValidationError as exc:
            problems += [f"{key}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise ConfigError(f"{path}:\n  " + "\n  ".join(problems))
    return dims
