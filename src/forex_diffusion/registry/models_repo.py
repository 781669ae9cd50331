"""Models: register (idempotent, versioned), look up by name or id, list; the lookups that the
other entity modules share (unknown names raise NotFoundError listing what exists).

Every function takes an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forex_diffusion.errors import NotFoundError, RegistryError
from forex_diffusion.registry.db import mask_url
from forex_diffusion.registry.model_configs import CONFIG_FIELDS
from forex_diffusion.registry.models import ModelRow
from forex_diffusion.registry.records import ModelRecord
from forex_diffusion.registry.values import json_diff, to_json

MAX_VERSIONS = 10_000
_VERSION_SUFFIX = re.compile(r"^(?P<stem>.+)_v(?P<number>\d+)$")
DATABASE_KEY = "database"


def database(session: Session) -> str:
    """The session's database URL for messages (password masked)."""
    named = session.info.get(DATABASE_KEY)
    return str(named) if named else mask_url(session.get_bind().engine.url)


def version_candidates(name: str) -> Iterator[str]:
    """``sssd_v1`` -> sssd_v2, sssd_v3, ...; ``mymodel`` -> mymodel_v2, mymodel_v3, ..."""
    match = _VERSION_SUFFIX.match(name)
    stem, number = (match["stem"], int(match["number"])) if match else (name, 1)
    for n in range(number + 1, number + 1 + MAX_VERSIONS):
        yield f"{stem}_v{n}"


# --------------------------------------------------------------------------- lookups


def assets(session: Session) -> list[str]:
    """Assets with at least one model, sorted."""
    return list(session.scalars(select(ModelRow.asset).distinct().order_by(ModelRow.asset)))


def unknown_asset(session: Session, asset: str) -> NotFoundError:
    known_assets = assets(session)
    known = (
        f"registered assets: {', '.join(known_assets)}"
        if known_assets
        else "the registry is empty (train a model first: forex-diffusion train ...)"
    )
    return NotFoundError(f"no model registered for asset {asset!r} in {database(session)}; {known}")


def by_name(session: Session, asset: str, model_name: str) -> ModelRow:
    row = session.scalars(
        select(ModelRow).where(ModelRow.asset == asset, ModelRow.model_name == model_name)
    ).one_or_none()
    if row is not None:
        return row
    names = list(
        session.scalars(
            select(ModelRow.model_name).where(ModelRow.asset == asset).order_by(ModelRow.model_name)
        )
    )
    if not names:
        raise unknown_asset(session, asset)
    raise NotFoundError(
        f"no model {model_name!r} for asset {asset} in {database(session)}; "
        f"models of {asset}: {', '.join(names)}"
    )


def of_asset(session: Session, asset: str, model_name: str | None) -> list[ModelRow]:
    """``model_name`` of ``asset``, or all its models by name (NotFoundError when none)."""
    if model_name is not None:
        return [by_name(session, asset, model_name)]
    rows = list(
        session.scalars(
            select(ModelRow).where(ModelRow.asset == asset).order_by(ModelRow.model_name)
        )
    )
    if not rows:
        raise unknown_asset(session, asset)
    return rows


def by_id(session: Session, model_id: int) -> ModelRow:
    row = session.get(ModelRow, model_id)
    if row is None:
        ids = [
            f"{m.id} ({m.asset}/{m.model_name})"
            for m in session.scalars(select(ModelRow).order_by(ModelRow.id).limit(20))
        ]
        known = f"registered models: {', '.join(ids)}" if ids else "the registry is empty"
        raise NotFoundError(f"no model with id {model_id} in {database(session)}; {known}")
    return row


def covered_assets(model: ModelRow) -> list[str]:
    """The assets a global model was trained on (its ``model.assets``, upper case); empty for a
    per-asset model."""
    return [str(a).strip().upper() for a in model.architecture_config.get("assets") or ()]


def serves(model: ModelRow, asset: str) -> bool:
    """Whether ``model`` forecasts ``asset``: a per-asset model its own asset only; a global
    model (one with ``model.assets``) any asset: those it covers through their embedding rows,
    any other through its unseen-asset embedding."""
    return model.asset == asset or bool(covered_assets(model))


def by_id_serving(session: Session, model_id: int, asset: str, what: str) -> ModelRow:
    """Model ``model_id``, which must serve ``asset`` (see :func:`serves`; RegistryError naming
    both when it does not: a per-asset model of another asset)."""
    model = by_id(session, model_id)
    if not serves(model, asset):
        raise RegistryError(
            f"{what}: model {model_id} ({model.asset}/{model.model_name}) belongs to "
            f"{model.asset}, not {asset}; pass that model's asset or another model id"
        )
    return model


# --------------------------------------------------------------------------- register / list


def identity(model_type: str, configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The stored identity of a model: its type and its four configs as plain JSON."""
    wanted: dict[str, Any] = {"model_type": str(model_type)}
    for name in CONFIG_FIELDS:
        value = configs[name]
        if not isinstance(value, Mapping):
            raise RegistryError(f"{name} must be a mapping, got {type(value).__name__}")
        wanted[name] = to_json(value, name, finite_only=True)
    return wanted


def _get_or_create(session: Session, asset: str, name: str, wanted: dict[str, Any]) -> ModelRow:
    query = select(ModelRow).where(ModelRow.asset == asset, ModelRow.model_name == name)
    row = session.scalars(query).one_or_none()
    if row is not None:
        return row
    candidate = ModelRow(asset=asset, model_name=name, **wanted)
    try:
        with session.begin_nested():
            session.add(candidate)
    except IntegrityError:
        # Another process inserted the same (asset, model_name) first: use its row.
        return session.scalars(query).one()
    return candidate


def _config_diff(row: ModelRow, wanted: dict[str, Any]) -> list[str]:
    current = {"model_type": row.model_type, **{f: getattr(row, f) for f in CONFIG_FIELDS}}
    return json_diff(current, wanted)


def register(
    session: Session, asset: str, model_name: str, wanted: dict[str, Any], new_version: bool
) -> ModelRecord:
    """Register (asset, model_name) with identity ``wanted`` (see ``Registry.register_model``)."""
    names = [model_name]
    if new_version:
        names += list(version_candidates(model_name))
    first_diff: list[str] = []
    for name in names:
        row = _get_or_create(session, asset, name, wanted)
        diff = _config_diff(row, wanted)
        if not diff:
            return ModelRecord.model_validate(row)
        if not first_diff:
            first_diff = diff
        if not new_version:
            break
    shown = "; ".join(first_diff[:12]) + (" ..." if len(first_diff) > 12 else "")
    suggestion = next(version_candidates(model_name))
    raise RegistryError(
        f"model {asset}/{model_name} already exists in {database(session)} with a "
        f"different configuration ({shown}). Register it as a new version "
        f"(new_version=True, e.g. {suggestion}) or choose another model.name."
    )


def list_models(session: Session, asset: str | None) -> list[ModelRecord]:
    """All models (of ``asset``), ordered by asset and name; empty when none match."""
    query = select(ModelRow).order_by(ModelRow.asset, ModelRow.model_name)
    if asset is not None:
        query = query.where(ModelRow.asset == asset)
    return [ModelRecord.model_validate(row) for row in session.scalars(query)]
