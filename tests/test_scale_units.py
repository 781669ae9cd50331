"""Fast checks of the scale-out pieces: rank-aware sampling, the SQLite refusal, the search
space, the execution keys of the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from forex_diffusion.config.sssd_config import load_sssd_config
from forex_diffusion.errors import ConfigError
from forex_diffusion.registry import model_configs_from_sssd
from forex_diffusion.training.sampler import EpochShuffleSampler
from sssd_test_utils import DEFAULT_CONFIG, tiny_config


@pytest.mark.parametrize("n", [10, 11, 1])
def test_rank_shards_partition_the_epoch(n: int) -> None:
    whole = EpochShuffleSampler(n, seed=3)
    whole.set_epoch(2)
    shards = []
    for rank in range(2):
        s = EpochShuffleSampler(n, seed=3, num_replicas=2, rank=rank)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s) == -(-n // 2)
    # interleaved, the shards are the single-process order (padded by its head when n is odd)
    merged = [i for pair in zip(*shards, strict=True) for i in pair]
    assert merged[:n] == list(whole)
    assert set(merged) == set(range(n))
    # and a new epoch is a new order
    other = EpochShuffleSampler(n, seed=3, num_replicas=2, rank=0)
    other.set_epoch(3)
    assert n < 3 or list(other) != shards[0]


def test_rank_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        EpochShuffleSampler(5, seed=0, num_replicas=2, rank=2)


def test_execution_keys_validated_and_not_in_model_identity() -> None:
    cfg = tiny_config(["training.devices=2", "training.strategy=ddp", "training.num_nodes=2"])
    assert (cfg.training.devices, cfg.training.strategy, cfg.training.num_nodes) == (2, "ddp", 2)
    assert model_configs_from_sssd(cfg) == model_configs_from_sssd(tiny_config())
    with pytest.raises(ConfigError, match=r"training\.strategy"):
        tiny_config(["training.strategy=horovod"])
    with pytest.raises(ConfigError, match=r"training\.devices"):
        tiny_config(["training.devices=0"])
    assert tiny_config(["training.devices=auto"]).training.devices == "auto"


def test_sqlite_registry_refused_with_remote_workers() -> None:
    pytest.importorskip("ray")
    from forex_diffusion.scale.cluster import ClusterInfo, check_shared_registry

    local = ClusterInfo(["10.0.0.1"], "10.0.0.1")
    spread = ClusterInfo(["10.0.0.1", "10.0.0.2"], "10.0.0.1")
    check_shared_registry("sqlite:////tmp/r.db", local)
    check_shared_registry("postgresql+psycopg://u:secret@db:5432/fx", spread)
    with pytest.raises(ConfigError, match="FOREX_DIFFUSION_DB_URL=postgresql") as err:
        check_shared_registry("sqlite:////tmp/r.db", spread)
    assert "10.0.0.2" in str(err.value)


def test_search_space_checked_by_the_strict_config(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from forex_diffusion.scale.search_space import apply_params, load_search_space

    base = load_sssd_config(DEFAULT_CONFIG)
    good = tmp_path / "space.yaml"
    good.write_text(
        "training.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "model.head.hidden_dim: {type: choice, values: [32, 64]}\n"
        "model.encoder.n_layers: {type: randint, low: 1, high: 3}\n"
    )
    space = load_search_space(good, base)
    assert set(space.tune_space()) == {
        "training.learning_rate",
        "model.head.hidden_dim",
        "model.encoder.n_layers",
    }
    tuned = apply_params(base, {"training.learning_rate": 0.002, "model.head.hidden_dim": 64})
    assert tuned.training.learning_rate == 0.002 and tuned.model.head.hidden_dim == 64

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "training.learnin_rate: {type: uniform, low: 0.1, high: 0.2}\n"
        "model.encoder.dropout: {type: uniform, low: 0.5, high: 1.5}\n"
        "training.batch_size: {type: choice, values: [32, 0]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_search_space(bad, base)
    text = str(err.value)
    assert "training.learnin_rate: unknown key" in text
    assert "model.encoder.dropout=1.5" in text
    assert "training.batch_size=0" in text
