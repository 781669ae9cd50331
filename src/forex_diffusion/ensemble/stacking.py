"""``StackingForecaster``: a purged out-of-fold stack of point forecasters with SSSD reweighting.

Members (default: Ridge, Lasso and HistGradientBoosting on the flat features, and
``SSSDWrapper``) are fitted fold by fold on ``PurgedTimeSeriesSplit`` folds. On their
out-of-fold predictions a Ridge meta-learner combines the other members into
B_t = a_0 + Σ_i a_i · p_i,t, and a second Ridge on the inputs [m_t · (p_s,t − B_t), z_t]
(the uncertainty member's prediction and its relative log std z) gives its share:

    ŷ_t = b + (1 − α_t) · B_t + α_t · p_s,t + c · z_t,   α_t = clip(α_0 · exp(−γ z_t), lo, hi)

so the uncertainty member's weight α_t rises when its predicted std is low against its own
recent level and the other members' weights (1 − α_t) · a_i fall by as much
(:mod:`forex_diffusion.ensemble.reweighting`). γ is chosen among ``gammas`` by out-of-fold
squared error of this rule, bounds included. The weights used for each prediction are returned
(:class:`StackPrediction`) and logged.

Where it does not help: when no member beats the zero forecast (short-horizon FX returns are
close to unpredictable in the mean), the meta-learner can only shrink towards a constant, and
the stack may still lose to the zero forecast out of sample (the meta-learner's own fit is
in-sample on the out-of-fold rows). When the uncertainty member's fitted share α_0 is not
positive its weight sits at the lower bound everywhere: the reweighting then has nothing to
scale. With walk-forward folds the first block has no out-of-fold prediction and is not used
by the meta-learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Lasso, Ridge
from sklearn.utils.validation import check_is_fitted

from forex_diffusion.ensemble.purged_split import PurgedTimeSeriesSplit, decision_times_of
from forex_diffusion.ensemble.reweighting import relative_log_std, weight_multiplier
from forex_diffusion.ensemble.sssd_wrapper import SSSDWrapper

Members = Sequence[tuple[str, Any]]


def default_members(sssd: SSSDWrapper | None = None) -> list[tuple[str, Any]]:
    """Ridge, Lasso, HistGradientBoosting (on the flat features) and SSSD."""
    return [
        ("ridge", Ridge(alpha=10.0)),
        ("lasso", Lasso(alpha=0.05, max_iter=5000)),
        ("hgb", HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05, random_state=0)),
        ("sssd", sssd if sssd is not None else SSSDWrapper()),
    ]


@dataclass(frozen=True)
class StackPrediction:
    """Stack forecasts with the weights used for each.

    Attributes:
        prediction: (N,) stacked forecast indexed by decision time.
        weights: (N, M) weight of each member per decision time (the uncertainty member's
            varies, the others are constant), plus ``intercept`` and ``std_coef`` columns.
        members: (N, M) each member's own prediction.
        z: (N,) the uncertainty member's relative log std.
    """

    prediction: pd.Series
    weights: pd.DataFrame
    members: pd.DataFrame
    z: pd.Series


class StackingForecaster(RegressorMixin, BaseEstimator):
    """Purged out-of-fold stacking with uncertainty-based reweighting of one member.

    Args:
        members: (name, estimator) pairs; None = :func:`default_members`.
        uncertainty_member: name of the member whose ``predict_std`` drives its weight.
        cv: the folds of the out-of-fold predictions; None = ``PurgedTimeSeriesSplit(5,
            horizon_minutes=horizon)`` (walk-forward).
        horizon: target horizon (minutes) for the default folds.
        meta_alpha: Ridge penalty of the meta-learner.
        std_window: previous predicted stds forming the reference level of z.
        gammas: candidate sensitivities γ ≥ 0 (chosen by out-of-fold squared error).
        z_clip: |z| beyond this counts as this.
        weight_bounds: (lo, hi) bounds of the uncertainty member's weight α.
    """

    def __init__(
        self,
        members: Members | None = None,
        uncertainty_member: str = "sssd",
        cv: Any = None,
        horizon: int = 60,
        meta_alpha: float = 1.0,
        std_window: int = 48,
        gammas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        z_clip: float = 2.0,
        weight_bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.members = members
        self.uncertainty_member = uncertainty_member
        self.cv = cv
        self.horizon = horizon
        self.meta_alpha = meta_alpha
        self.std_window = std_window
        self.gammas = gammas
        self.z_clip = z_clip
        self.weight_bounds = weight_bounds

    # ------------------------------------------------------------------ helpers
    def _members(self) -> list[tuple[str, Any]]:
        members = list(self.members) if self.members is not None else default_members()
        names = [n for n, _ in members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique: {names}")
        if self.uncertainty_member not in names:
            raise ValueError(
                f"uncertainty_member {self.uncertainty_member!r} is not a member ({names})"
            )
        if not hasattr(dict(members)[self.uncertainty_member], "predict_std"):
            raise ValueError(
                f"uncertainty_member {self.uncertainty_member!r} has no predict_std(X): the "
                "reweighting needs the member's predicted standard deviation"
            )
        return members

    def _cv(self) -> Any:
        if self.cv is not None:
            return self.cv
        return PurgedTimeSeriesSplit(n_splits=5, horizon_minutes=int(self.horizon))

    def _combine(
        self, P: np.ndarray, z: np.ndarray, gamma: float, alpha0: float, b: float, c: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N,) stacked forecast and (N, M) weights actually used (α bounded)."""
        lo, hi = self.weight_bounds
        alpha = np.clip(alpha0 * weight_multiplier(z, gamma, self.z_clip), lo, hi)
        others = [j for j in range(P.shape[1]) if j != self.u_index_]
        W = np.zeros_like(P)
        W[:, others] = (1.0 - alpha)[:, None] * self.base_coef_[None, :]
        W[:, self.u_index_] = alpha
        base = self.base_intercept_ + P[:, others] @ self.base_coef_
        pred = b + (1.0 - alpha) * base + alpha * P[:, self.u_index_] + c * z
        return pred, W

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> StackingForecaster:
        """Out-of-fold member predictions → meta-learner and γ → members refitted on all of X."""
        lo, hi = self.weight_bounds
        if not lo < hi:
            raise ValueError(f"weight_bounds must satisfy lo < hi, got {self.weight_bounds}")
        times = decision_times_of(X)
        yy = np.asarray(y, dtype=np.float64)
        members = self._members()
        self.names_ = [n for n, _ in members]
        self.u_index_ = self.names_.index(self.uncertainty_member)
        n, m = len(times), len(members)
        P = np.full((n, m), np.nan)
        S = np.full(n, np.nan)
        fold = np.full(n, -1)
        samples: dict[int, np.ndarray] = {}
        for k, (train, test) in enumerate(self._cv().split(X, yy)):
            if len(train) == 0:
                raise ValueError(f"fold {k} has no training samples after purging")
            Xtr, Xte = X.iloc[train], X.iloc[test]
            for j, (_, est) in enumerate(members):
                fitted = clone(est).fit(Xtr, yy[train])
                P[test, j] = fitted.predict(Xte)
                if j == self.u_index_:
                    S[test] = fitted.predict_std(Xte)
                    if hasattr(fitted, "sample"):
                        for i, row in zip(test, fitted.sample(Xte), strict=True):
                            samples[int(i)] = row
            fold[test] = k
            logger.info("stack fold {}: train {} rows, test {} rows", k, len(train), len(test))
        covered = np.isfinite(P).all(axis=1) & np.isfinite(S) & (S > 0)
        if covered.sum() < m + 2:
            raise ValueError(f"only {int(covered.sum())} out-of-fold rows; need more data")
        Pc, yc = P[covered], yy[covered]
        z = relative_log_std(S[covered], None, self.std_window)
        others = [j for j in range(m) if j != self.u_index_]
        base_meta = Ridge(alpha=self.meta_alpha).fit(Pc[:, others], yc)
        self.base_coef_ = np.asarray(base_meta.coef_, dtype=np.float64)
        self.base_intercept_ = float(base_meta.intercept_)
        base = self.base_intercept_ + Pc[:, others] @ self.base_coef_
        best: tuple[float, float, float, float, float] | None = None
        for gamma in self.gammas:
            if gamma < 0:
                raise ValueError(f"gammas must be >= 0, got {gamma}")
            mult = weight_multiplier(z, gamma, self.z_clip)
            D = np.column_stack([mult * (Pc[:, self.u_index_] - base), z])
            meta = Ridge(alpha=self.meta_alpha).fit(D, yc - base)
            a0, c = (float(v) for v in meta.coef_)
            pred, _ = self._combine(Pc, z, gamma, a0, float(meta.intercept_), c)
            mse = float(np.mean((pred - yc) ** 2))
            if best is None or mse < best[0]:
                best = (mse, float(gamma), a0, float(meta.intercept_), c)
        assert best is not None
        _, self.gamma_, self.alpha0_, self.intercept_, self.std_coef_ = best
        oof_pred, oof_w = self._combine(
            Pc, z, self.gamma_, self.alpha0_, self.intercept_, self.std_coef_
        )
        idx = times[covered]
        self.oof_ = pd.DataFrame(Pc, index=idx, columns=self.names_)
        self.oof_["std"] = S[covered]
        self.oof_["z"] = z
        self.oof_["fold"] = fold[covered]
        self.oof_["stack"] = oof_pred
        self.oof_["y"] = yc
        self.oof_weights_ = pd.DataFrame(oof_w, index=idx, columns=self.names_)
        rows = [int(i) for i in np.flatnonzero(covered)]
        # (N_covered, S) out-of-fold samples of the uncertainty member, when it has them
        self.oof_samples_ = (
            np.stack([samples[i] for i in rows]) if all(i in samples for i in rows) else None
        )
        self.std_history_ = S[covered][-int(self.std_window) :]
        self.fitted_until_ = times[-1]
        self.members_ = [(name, clone(est).fit(X, yy)) for name, est in members]
        self._log_weights("fit (out of fold)", oof_w[:, self.u_index_])
        return self

    def _log_weights(self, what: str, w_u: np.ndarray) -> None:
        names = [n for j, n in enumerate(self.names_) if j != self.u_index_]
        others = {n: round(float(a), 4) for n, a in zip(names, self.base_coef_, strict=True)}
        logger.info(
            "stack {}: {} weight mean {:.4f} range [{:.4f}, {:.4f}] (gamma {}), the others "
            "share 1 - weight of {}, intercept {:.4f}",
            what,
            self.uncertainty_member,
            float(np.mean(w_u)),
            float(np.min(w_u)),
            float(np.max(w_u)),
            self.gamma_,
            others,
            self.intercept_,
        )

    # ------------------------------------------------------------------ predict
    def predict_with_weights(self, X: Any) -> StackPrediction:
        """Stacked forecasts of X (rows in time order) with the weights used for each row.

        The reference level of z continues from the end of the fit range when X starts after
        it; otherwise it starts fresh from X's own rows.
        """
        check_is_fitted(self, "members_")
        times = decision_times_of(X)
        P = np.column_stack([est.predict(X) for _, est in self.members_])
        std = self.members_[self.u_index_][1].predict_std(X)
        history = self.std_history_ if times[0] > self.fitted_until_ else None
        z = relative_log_std(std, history, self.std_window)
        pred, W = self._combine(P, z, self.gamma_, self.alpha0_, self.intercept_, self.std_coef_)
        weights = pd.DataFrame(W, index=times, columns=self.names_)
        weights["intercept"] = self.intercept_ + (1.0 - W[:, self.u_index_]) * self.base_intercept_
        weights["std_coef"] = self.std_coef_
        self._log_weights("predict", W[:, self.u_index_])
        return StackPrediction(
            prediction=pd.Series(pred, index=times, name="stack"),
            weights=weights,
            members=pd.DataFrame(P, index=times, columns=self.names_),
            z=pd.Series(z, index=times, name="z"),
        )

    def predict(self, X: Any) -> np.ndarray:
        """(N,) stacked forecast."""
        return self.predict_with_weights(X).prediction.to_numpy()
