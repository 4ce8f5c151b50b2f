"""The threshold solver: the smallest threshold whose mean run length reaches ``ert``.

Holds ``ThresholdFit`` (the result, JSON-safe via ``as_dict``),
``solve_threshold`` (bisection on ``h`` over an ``ArlEstimator``),
``calibrate_threshold`` (surrogates of a reference -> a detector's statistic
paths -> threshold, in one call) and ``split_budget`` (several signals on one
stream share its alarm budget).

Failure mode guarded against: a threshold read off surrogate paths much
shorter than ``ert`` where too few streams fire to estimate the tail hazard
(fewer than ``min_events``), which would be noise. There ``log ARL`` is
extrapolated linearly in ``h`` from the reliably estimated range: for a
CUSUM ``log ARL`` is asymptotically linear in ``h`` (Siegmund's
approximation ``ARL ~ (exp(2 k h' / v) - 1 - 2 k h' / v) v / (2 k^2)``,
``v`` the long-run variance of the standardised score), whose slope
``2 k / v`` is the fallback (``slope_hint``) when the fit is ill-conditioned.
Without one, an unreachable ``ert`` raises rather than return a threshold
nothing supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from processors.calibration.ar import ARModel
from processors.calibration.run_length import ArlEstimator
from processors.calibration.surrogates import N_GROUPS, SurrogateMethod, surrogate_streams


@dataclass(frozen=True)
class ThresholdFit:
    """Result of ``solve_threshold``.

    ``method`` is ``"simulated"`` when ``ARL(threshold)`` was estimated
    directly from the surrogate paths, ``"extrapolated"`` when ``log ARL`` was
    extended linearly in the threshold beyond them.
    """

    threshold: float
    arl: float
    method: str
    events: int
    n_streams: int
    horizon: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and reports."""
        return asdict(self)


def solve_threshold(
    estimator: ArlEstimator,
    ert: float,
    *,
    min_events: int = 30,
    slope_hint: float | None = None,
    tol: float = 1e-3,
) -> ThresholdFit:
    """Smallest threshold whose estimated ARL reaches ``ert`` (bisection on ``h``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = ArlEstimator(rng.standard_normal((400, 1000)))
    >>> fit = solve_threshold(est, 200.0)
    >>> bool(2.4 < fit.threshold < 2.8), fit.method   # P(z > 2.58) = 1/200
    (True, 'simulated')
    """
    if not ert > 1.0:
        raise ValueError(f"ert must be > 1, got {ert!r}")
    top = estimator.max_statistic
    if not math.isfinite(top):
        raise ValueError("detector statistic never became finite on the surrogates")

    # Highest h whose ARL still rests on min_events tail alarms.
    h_rel, _ = _bisect(
        estimator.min_statistic, top, lambda h: estimator.arl(h)[1] >= min_events, tol
    )
    arl_rel, ev_rel = estimator.arl(h_rel)

    if arl_rel >= ert:
        _, hi = _bisect(estimator.min_statistic, h_rel, lambda h: estimator.arl(h)[0] < ert, tol)
        arl, ev = estimator.arl(hi)
        return ThresholdFit(hi, arl, "simulated", ev, estimator.n_streams, estimator.horizon)

    slope = _log_arl_slope(estimator, h_rel, arl_rel)
    if slope is None or slope <= 0.0:
        if slope_hint is None or slope_hint <= 0.0:
            raise ValueError(
                f"cannot reach ert={ert:g}: ARL {arl_rel:.3g} at the largest reliable threshold"
            )
        slope = slope_hint
    h = h_rel + (math.log(ert) - math.log(arl_rel)) / slope
    return ThresholdFit(
        float(h), float(ert), "extrapolated", ev_rel, estimator.n_streams, estimator.horizon
    )


def _bisect(
    lo: float, hi: float, below: Callable[[float], bool], tol: float
) -> tuple[float, float]:
    """Shrink ``[lo, hi]`` around where ``below(h)`` turns from true to false.

    At most 60 halvings, until ``hi - lo <= tol * max(1, |hi|)``; ``lo`` ends
    on the last ``h`` tried with ``below(h)`` true, ``hi`` on the last false.

    Examples
    --------
    >>> lo, hi = _bisect(0.0, 4.0, lambda h: h * h < 2.0, 1e-6)
    >>> lo < 2 ** 0.5 <= hi, hi - lo <= 1e-6 * hi
    (True, True)
    """
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if below(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(1.0, abs(hi)):
            break
    return lo, hi


def _log_arl_slope(estimator: ArlEstimator, h_rel: float, arl_rel: float) -> float | None:
    """Slope of ``log ARL`` in ``h`` over the reliably estimated upper range."""
    # Fit over thresholds whose ARL spans about a factor of 10 below arl_rel,
    # where the tail is already geometric and still well estimated.
    hs = np.linspace(estimator.min_statistic, h_rel, 40)
    arls = np.array([estimator.arl(float(h))[0] for h in hs])
    keep = np.isfinite(arls) & (arls >= arl_rel / 10.0) & (arls > 5.0)
    if keep.sum() < 4 or np.ptp(hs[keep]) <= 0.0:
        return None
    slope, _ = np.polyfit(hs[keep], np.log(arls[keep]), 1)
    return float(slope)


def calibrate_threshold(
    reference: Sequence[float] | np.ndarray,
    ert: float,
    paths_of: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int = 0,
    n_streams: int = 1000,
    horizon: int = 2000,
    method: SurrogateMethod = "ar",
    level_noise: bool = True,
    parameter_noise: bool = True,
    n_groups: int = N_GROUPS,
    slope_hint: float | None = None,
    model: ARModel | None = None,
) -> ThresholdFit:
    """Surrogates of ``reference`` -> ``paths_of(streams)`` -> threshold for ``ert``.

    ``paths_of`` maps ``(n_streams, horizon)`` raw values to the detector's
    statistic path on each (see ``ArlEstimator``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.standard_normal(20_000)
    >>> fit = calibrate_threshold(ref, 200.0, lambda s: np.abs(s), method="iid", level_noise=False)
    >>> 2.6 < fit.threshold < 3.0   # P(|z| > 2.81) = 1/200 for N(0,1)
    True
    """
    rng = np.random.default_rng(seed)
    streams = surrogate_streams(
        reference,
        n_streams,
        horizon,
        rng=rng,
        method=method,
        model=model,
        level_noise=level_noise,
        parameter_noise=parameter_noise,
        n_groups=n_groups,
    )
    est = ArlEstimator(paths_of(streams), n_groups=n_groups)
    return solve_threshold(est, ert, slope_hint=slope_hint)


def split_budget(ert_total: float, n_signals: int) -> float:
    """Per-signal ERT so that ``n_signals`` detectors together keep ``ert_total``.

    False alarms add up across signals (a union bound, Bonferroni-style): with
    each signal at ``ert_total * n_signals`` the stream raises on average at
    most one false alarm per ``ert_total`` events.

    Examples
    --------
    >>> split_budget(10_000, 4)
    40000.0
    """
    if n_signals < 1:
        raise ValueError(f"n_signals must be >= 1, got {n_signals}")
    if not ert_total > 0:
        raise ValueError(f"ert_total must be > 0, got {ert_total!r}")
    return float(ert_total) * n_signals
