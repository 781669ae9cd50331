"""A second learned peer for the evaluation: NeuralForecast NHITS with a Student-t likelihood.

Needs the optional ``peers`` extra (``pip install 'forex-diffusion[peers]'``); without it
:func:`nhits_available` is False and the evaluation notes that the row was skipped.

The target series is the 5m log close (in basis points), not the 5m log return. NHITS maps a
window of the last ``input_size`` bars closed by t to a Student-t per step k = 1..K ahead, and
its per-window standardisation makes the forecast equivariant to a shift of the level. So the
step-k marginal is the distribution of log close(t + k bars), and minus the known log close(t)
it is the distribution of the cumulative k-bar log return itself: each horizon h is read off
the marginal of step h/5, with no aggregation of per-step returns (whose draws are not jointly
modelled) and no independence assumption. The likelihood of each step is a proper score of
that marginal, so one model trained on all K steps fits every horizon.

Cheap history inputs: the 5m log return and the time of day (sine, cosine) of every input bar.
Steps count bars, so across a gap "k bars ahead" and "h minutes ahead" differ; the evaluation
scores only decision times whose target bars exist.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

BAR = pd.Timedelta(minutes=5)
BP = 1e4  # the series is in basis points of log price
EXOG = ("r_5m", "tod_sin", "tod_cos")
_QUIET_LOGGERS = (
    "lightning.pytorch",
    "pytorch_lightning",
    "lightning.fabric",
    "lightning_fabric",
    "neuralforecast",
)


def nhits_available() -> bool:
    """Whether the optional ``peers`` extra (neuralforecast) is installed."""
    return importlib.util.find_spec("neuralforecast") is not None


def _series(bars_5m: pd.DataFrame) -> pd.DataFrame:
    """Per 5m bar (by close time): y = log close in bp, and the history inputs :data:`EXOG`.

    Returns:
        (B, 4) frame indexed by close time; ``r_5m`` is NaN on the first bar.
    """
    close_t = bars_5m.index + BAR
    y = np.log(bars_5m["close"].to_numpy(np.float64)) * BP
    minutes = close_t.hour * 60 + close_t.minute
    return pd.DataFrame(
        {
            "y": y,
            "r_5m": np.concatenate([[np.nan], np.diff(y)]),
            "tod_sin": np.sin(2 * np.pi * minutes / 1440),
            "tod_cos": np.cos(2 * np.pi * minutes / 1440),
        },
        index=close_t,
    )


@contextmanager
def _isolated() -> Iterator[None]:
    """Run NeuralForecast without leaving state behind: one CPU thread, the global RNGs (which
    Lightning's seeding resets) and the log levels restored, its chatter silenced."""
    import torch

    threads = torch.get_num_threads()
    rng = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    seed_env = os.environ.get("PL_GLOBAL_SEED")
    levels = {n: logging.getLogger(n).level for n in _QUIET_LOGGERS}
    try:
        torch.set_num_threads(1)
        for n in _QUIET_LOGGERS:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.random.set_rng_state(rng[2])
        if seed_env is None:
            os.environ.pop("PL_GLOBAL_SEED", None)
        else:
            os.environ["PL_GLOBAL_SEED"] = seed_env
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)


@dataclass
class NHITSPeer:
    """NHITS with a Student-t likelihood on the 5m log close (see the module doc).

    Attributes:
        steps: K, 5m steps ahead forecast (≥ the longest horizon / 5).
        input_size: 5m bars of history per forecast.
        max_steps: training iterations (on CPU, one thread).
        seed: fixes the initialisation and the sampled training windows.
        model: the fitted NeuralForecast object (None before :meth:`fit`).
    """

    steps: int = 48
    input_size: int = 96
    max_steps: int = 300
    seed: int = 0
    mlp_units: tuple[int, int] = (128, 128)
    windows_batch_size: int = 256
    model: Any = field(default=None, repr=False)

    def fit(self, bars_5m: pd.DataFrame) -> NHITSPeer:
        """Fit on one contiguous history of 5m bars (every training target lies inside it).

        Args:
            bars_5m: (B, OHLC) 5m bars indexed by open time, B > input_size + steps.
        """
        from neuralforecast import NeuralForecast
        from neuralforecast.losses.pytorch import DistributionLoss
        from neuralforecast.models import NHITS

        s = _series(bars_5m).iloc[1:]
        s = s[np.isfinite(s.to_numpy()).all(axis=1)]
        if len(s) < self.input_size + self.steps + 50:
            raise ValueError(f"only {len(s)} usable 5m bars to train NHITS on")
        df = pd.DataFrame(
            {"unique_id": "train", "ds": np.arange(len(s)), **{c: s[c].to_numpy() for c in s}}
        )
        with _isolated():
            net = NHITS(
                h=self.steps,
                input_size=self.input_size,
                loss=DistributionLoss("StudentT", level=[90], return_params=True),
                hist_exog_list=list(EXOG),
                mlp_units=[list(self.mlp_units)] * 3,
                max_steps=self.max_steps,
                windows_batch_size=self.windows_batch_size,
                scaler_type="standard",
                random_seed=self.seed,
                accelerator="cpu",
                devices=1,
                logger=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
            )
            nf = NeuralForecast(models=[net], freq=1)
            nf.fit(df)
        self.model = nf
        return self

    def student_t(
        self, bars_5m: pd.DataFrame, times: pd.DatetimeIndex
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Student-t parameters of the cumulative k-bar log return at each decision time.

        Args:
            bars_5m: 5m bars (by open time) holding at least ``input_size + 1`` bars before
                each decision time; only bars closed by t enter the forecast at t.
            times: (N,) decision times (5m close times).

        Returns:
            df, loc, scale: each (N, K) in log-return units; NaN rows where the history is
            short or holds a non-finite value.
        """
        if self.model is None:
            raise RuntimeError("NHITSPeer.predict before fit")
        s = _series(bars_5m)
        close_ns = s.index.as_unit("ns").asi8
        ends = np.searchsorted(close_ns, pd.DatetimeIndex(times).as_unit("ns").asi8, "right")
        values = s.to_numpy(np.float64)
        out = np.full((3, len(times), self.steps), np.nan)
        ok = ends - self.input_size >= 1
        rows = np.flatnonzero(ok)
        win = ends[rows, None] - self.input_size + np.arange(self.input_size)  # (n, L)
        block = values[win]  # (n, L, 4)
        finite = np.isfinite(block).all(axis=(1, 2))
        rows, block = rows[finite], block[finite]
        if len(rows) == 0:
            return out[0], out[1], out[2]
        last = block[:, -1, 0].copy()
        block[:, :, 0] -= last[:, None]  # relative to log close(t): step k reads as a return
        n, length = len(rows), self.input_size
        df = pd.DataFrame(
            {
                "unique_id": np.repeat(np.arange(n), length),
                "ds": np.tile(np.arange(length), n),
                "y": block[:, :, 0].ravel(),
                **{c: block[:, :, 1 + i].ravel() for i, c in enumerate(EXOG)},
            }
        )
        with _isolated():
            pred = self.model.predict(df=df)
        pred = pred.sort_values(["unique_id", "ds"])
        for i, name in enumerate(("NHITS-df", "NHITS-loc", "NHITS-scale")):
            out[i, rows] = pred[name].to_numpy(np.float64).reshape(n, self.steps)
        out[1:] /= BP
        return out[0], out[1], out[2]

    def predict_samples(
        self,
        bars_5m: pd.DataFrame,
        times: pd.DatetimeIndex,
        horizons: tuple[int, ...],
        num_samples: int = 200,
    ) -> np.ndarray:
        """(N, H, S) pseudo-samples: the Student-t quantiles at levels k/(S+1), k = 1..S, of
        each horizon's cumulative log return (non-decreasing along S; NaN where undefined)."""
        for h in horizons:
            if h % 5 or not 0 < h // 5 <= self.steps:
                raise ValueError(f"horizon {h} min is not a multiple of 5 within {self.steps}")
        dof, loc, scale = self.student_t(bars_5m, times)
        k = np.array([h // 5 - 1 for h in horizons])
        levels = np.arange(1, num_samples + 1) / (num_samples + 1.0)
        z = stats.t.ppf(levels[None, None, :], dof[:, k, None])  # (N, H, S)
        return loc[:, k, None] + scale[:, k, None] * z
