"""Thresholds from a reference that respect autocorrelation.

Camera frames are strongly correlated (lag-1 autocorrelation ~0.85 on
embedding distances). A threshold calibrated as if observations were
independent fires 20-150x too often on video (``ANCHORS.md``). This module
calibrates by simulation on surrogate streams that keep the reference's
autocorrelation:

1. **Location and scale.** ``robust_location_scale``: median and MAD (x1.4826)
   with a floor, so a constant-ish reference (saturated confidence, a class
   mix that never moves) cannot give a zero scale.
2. **Dependence.** ``fit_ar``: an AR(p) model by Yule-Walker, order chosen by
   BIC (p <= ``max_order``). From it the long-run variance
   ``sigma_e^2 / (1 - sum(phi))^2`` (the variance of a mean is
   ``long_run_variance / n``, not ``variance / n``) and the effective sample
   size ``n * variance / long_run_variance``.
3. **Surrogates.** ``surrogate_streams``: many long streams from the fitted
   AR(p) with innovations resampled from the reference's residuals (keeps the
   autocorrelation and roughly the marginal), or a circular block bootstrap,
   or (to show the contrast only) an i.i.d. bootstrap. A short correlated
   reference pins its own parameters only loosely (1,000 frames at lag-1
   0.85 are worth ~80 independent ones), so the streams come in groups --
   "worlds" -- each with its own draw of the AR coefficients and innovation
   scale from their sampling distribution, and its own level offset
   ~ N(0, long_run_variance / n) (the error of the reference mean, which a
   detector centred on it sees as a permanent small shift).
4. **Threshold search.** A detector supplies the *path* of its statistic on
   every surrogate stream without restarts (vectorised in numpy: CUSUM is a
   Lindley recursion, ``S_t = W_t - min(0, min_{s<=t} W_s)`` with ``W`` a
   cumulative sum). Because the path does not depend on the threshold ``h``,
   the first-passage time of every stream for any ``h`` is a binary search on
   the running maximum, so the mean run length ``ARL(h)`` costs microseconds
   per ``h`` and bisection on ``h`` is free. ``ARL(h)`` is estimated from
   paths much shorter than ``ert`` by the geometric tail of the run-length
   distribution: ``ARL = E[min(tau, T0)] + P(tau > T0) / lambda`` where the
   hazard ``lambda`` is the alarm rate per update of the streams still alive
   between a burn-in ``T0`` and the horizon ``T`` (events / exposure; the
   censored exponential MLE), computed per world; the worlds' false-alarm
   *rates* ``1 / ARL_g`` are averaged (a mean of run lengths would let a few
   quiet worlds hide the noisy ones). Where too few streams fire within ``T`` to
   estimate ``lambda`` (``min_events``), ``log ARL`` is extrapolated linearly
   in ``h`` from the reliably estimated range: for a CUSUM ``log ARL`` is
   asymptotically linear in ``h`` (Siegmund's approximation
   ``ARL ~ (exp(2 k h' / v) - 1 - 2 k h' / v) v / (2 k^2)``, ``v`` the
   long-run variance of the standardised score), whose slope ``2 k / v`` is
   the fallback when the fit is ill-conditioned.
5. **Short-reference guard.** ``between_block_inflation``: the reference is
   cut into blocks; if the block means spread more than the AR model
   predicts (``long_run_variance / block_length``), the reference has level
   changes its AR model does not describe (people come and go, the view
   wanders), and the scale is inflated by ``sqrt(observed / predicted)``
   (never below 1, capped). Thresholds are calibrated on the uninflated
   scale, then the detector standardises with the inflated one: the ``ert``
   holds on data like the reference, and level wandering up to the observed
   between-block spread costs no extra alarms.
6. ``split_budget``: several signals on one stream share its alarm budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import linalg, signal

MAD_TO_SIGMA = 1.482602218505602
MEAN_ABS_TO_SIGMA = 1.2533141373155002
SurrogateMethod = Literal["ar", "block", "iid"]


def robust_location_scale(
    x: Sequence[float] | np.ndarray, *, abs_floor: float = 1e-9
) -> tuple[float, float]:
    """Median and MAD-based scale, floored.

    When the MAD is 0 (most values equal: saturated confidence, a class that
    never changes) the scale falls back to the mean absolute deviation from
    the median (x1.2533, unbiased for a normal), then to
    ``abs_floor * max(1, |median|)``, so a reference never yields scale 0.

    Examples
    --------
    >>> robust_location_scale([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.482602218505602)
    >>> robust_location_scale([1.0] * 9 + [2.0])
    (1.0, 0.12533141373155002)
    >>> robust_location_scale([1.0] * 10)[1] > 0
    True
    """
    a = _finite_1d(x)
    med = float(np.median(a))
    dev = np.abs(a - med)
    floor = abs_floor * max(1.0, abs(med))
    scale = float(np.median(dev)) * MAD_TO_SIGMA
    if scale <= floor:
        scale = float(dev.mean()) * MEAN_ABS_TO_SIGMA
    return med, max(scale, floor)


def clipped_mean(x: Sequence[float] | np.ndarray, *, clip: float = 4.0) -> float:
    """Mean of ``x`` clipped to ``median +- clip * robust scale``.

    A CUSUM must be centred on the mean (centred on the median, a skewed
    signal such as a distance drifts up under no change); clipping keeps one
    gross outlier in a short reference from moving the centre.

    Examples
    --------
    >>> round(clipped_mean([0.0, 1.0, 2.0, 3.0, 1e6]), 3)   # 1e6 clipped to 2 + 4 * 1.483
    2.786
    """
    a = _finite_1d(x)
    med, scale = robust_location_scale(a)
    return float(np.mean(np.clip(a, med - clip * scale, med + clip * scale)))


@dataclass(frozen=True)
class ARModel:
    """A fitted AR(p) model ``x_t - mean = sum_j phi_j (x_{t-j} - mean) + e_t``.

    Attributes
    ----------
    mean, phi, sigma2
        Level, AR coefficients (lag 1 first) and innovation variance.
    residuals
        Centred one-step residuals on the reference (for the bootstrap).
    variance
        Marginal (sample) variance of the reference.
    phi_cov
        Asymptotic covariance of ``phi`` (``sigma2 * Gamma_p^-1 / n``): how
        uncertain the fitted dependence is, for surrogates that carry it.
    n
        Reference length.
    """

    mean: float
    phi: tuple[float, ...]
    sigma2: float
    residuals: np.ndarray
    variance: float
    phi_cov: np.ndarray
    n: int

    @property
    def long_run_variance(self) -> float:
        """``sigma2 / (1 - sum(phi))^2``: ``n`` times the variance of an ``n``-sample mean."""
        s = min(sum(self.phi), 0.995)
        return self.sigma2 / (1.0 - s) ** 2


def fit_ar(x: Sequence[float] | np.ndarray, *, max_order: int = 5) -> ARModel:
    """Yule-Walker AR(p) fit, ``p`` in ``0..max_order`` chosen by BIC.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = fit_ar(ar1_stream(rng, 5000, rho=0.8), max_order=3)
    >>> round(m.phi[0], 1), len(m.phi) <= 3
    (0.8, True)
    """
    a = _finite_1d(x)
    n = a.size
    mean = float(a.mean())
    c = a - mean
    var = float(np.dot(c, c) / n)
    if var <= 0.0 or n < 8:
        return ARModel(mean, (), max(var, 0.0), c.copy(), max(var, 0.0), np.zeros((0, 0)), n)
    max_order = max(0, min(max_order, n // 10))
    acov = np.array([np.dot(c[: n - j], c[j:]) / n for j in range(max_order + 1)])
    best: tuple[float, np.ndarray, float] = (n * math.log(var), np.zeros(0), var)
    for p in range(1, max_order + 1):
        phi = linalg.solve_toeplitz(acov[:p], acov[1 : p + 1])
        s2 = float(acov[0] - np.dot(phi, acov[1 : p + 1]))
        if s2 <= 0.0:
            break
        bic = n * math.log(s2) + p * math.log(n)
        if bic < best[0]:
            best = (bic, phi, s2)
    _, phi, s2 = best
    p = phi.size
    resid = c[p:].copy()
    for j in range(p):
        resid -= phi[j] * c[p - 1 - j : n - 1 - j]
    resid -= resid.mean()
    cov = s2 * np.linalg.inv(linalg.toeplitz(acov[:p])) / n if p else np.zeros((0, 0))
    return ARModel(mean, tuple(float(v) for v in phi), s2, resid, var, cov, n)


def long_run_variance(x: Sequence[float] | np.ndarray, *, max_order: int = 5) -> float:
    """Long-run variance of ``x`` from an AR(p) fit (``n * Var(mean of n)``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> lrv = long_run_variance(ar1_stream(rng, 20000, rho=0.8))
    >>> 7.0 < lrv < 11.0   # marginal variance 1, (1 + 0.8) / (1 - 0.8) = 9
    True
    """
    return fit_ar(x, max_order=max_order).long_run_variance


def effective_sample_size(x: Sequence[float] | np.ndarray, *, max_order: int = 5) -> float:
    """``n * variance / long_run_variance``: how many independent samples ``x`` is worth.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> ess = effective_sample_size(ar1_stream(rng, 10000, rho=0.85))
    >>> 500 < ess < 1300   # 10,000 * 0.15 / 1.85 = 811
    True
    """
    m = fit_ar(x, max_order=max_order)
    if m.long_run_variance <= 0.0:
        return float(len(m.residuals))
    return float(np.asarray(x).size * m.variance / m.long_run_variance)


def between_block_inflation(
    x: Sequence[float] | np.ndarray,
    model: ARModel | None = None,
    *,
    n_blocks: int = 8,
    cap: float = 3.0,
) -> float:
    """Scale inflation for level changes the reference's AR model does not explain.

    ``sqrt(var(block means) / (long_run_variance / block_length))`` clipped to
    ``[1, cap]``. Under the AR model the ratio is about 1 (a chi-square with
    ``n_blocks - 1`` degrees of freedom over its degrees of freedom).

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> between_block_inflation(ar1_stream(rng, 4000, rho=0.5)) < 1.6
    True
    >>> steps = np.repeat(rng.normal(0, 3, 8), 500) + rng.normal(0, 1, 4000)
    >>> between_block_inflation(steps) > 2
    True
    """
    a = _finite_1d(x)
    model = model or fit_ar(a)
    n_blocks = min(n_blocks, a.size // 10)
    if n_blocks < 3 or model.long_run_variance <= 0.0:
        return 1.0
    length = a.size // n_blocks
    means = a[: n_blocks * length].reshape(n_blocks, length).mean(axis=1)
    ratio = float(np.var(means, ddof=1)) / (model.long_run_variance / length)
    return float(min(cap, max(1.0, math.sqrt(ratio))))


@dataclass(frozen=True)
class ReferenceProfile:
    """What calibration learned about a reference signal (JSON-safe via ``as_dict``)."""

    n: int
    location: float
    mean: float
    scale: float
    inflation: float
    ar: tuple[float, ...]
    variance: float
    long_run_variance: float
    effective_sample_size: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and reports."""
        d = asdict(self)
        d["ar"] = list(self.ar)
        return d


def profile_reference(x: Sequence[float] | np.ndarray, *, max_order: int = 5) -> ReferenceProfile:
    """Robust location/scale, AR fit, long-run variance, ESS and inflation of ``x``.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> p = profile_reference(ar1_stream(rng, 2000, rho=0.85))
    >>> p.n, p.effective_sample_size < 400, p.inflation >= 1.0
    (2000, True, True)
    """
    a = _finite_1d(x)
    model = fit_ar(a, max_order=max_order)
    loc, scale = robust_location_scale(a)
    lrv = model.long_run_variance
    ess = a.size * model.variance / lrv if lrv > 0 else float(a.size)
    return ReferenceProfile(
        n=int(a.size),
        location=loc,
        mean=clipped_mean(a),
        scale=scale,
        inflation=between_block_inflation(a, model),
        ar=model.phi,
        variance=model.variance,
        long_run_variance=lrv,
        effective_sample_size=float(ess),
    )


def ar1_stream(rng: np.random.Generator, n: int, *, rho: float, shape: tuple[int, ...] = ()) -> Any:
    """A stationary AR(1) stream with N(0, 1) marginals (test and benchmark data).

    Examples
    --------
    >>> ar1_stream(np.random.default_rng(0), 3, rho=0.5).shape
    (3,)
    """
    e = rng.standard_normal((*shape, n)) * math.sqrt(1.0 - rho * rho)
    e[..., 0] = rng.standard_normal(shape)
    zi = np.zeros((*shape, 1))
    out, _ = signal.lfilter([1.0], [1.0, -rho], e, axis=-1, zi=zi)
    return out


N_GROUPS = 50


def group_bounds(n_streams: int, n_groups: int) -> np.ndarray:
    """Row boundaries of ``n_groups`` consecutive, near-equal groups of streams.

    Examples
    --------
    >>> group_bounds(10, 3).tolist()
    [0, 3, 6, 10]
    """
    return np.linspace(0, n_streams, n_groups + 1).astype(int)


def _ar_surrogates(
    a: np.ndarray,
    model: ARModel,
    n_streams: int,
    length: int,
    rng: np.random.Generator,
    parameter_noise: bool,
    n_groups: int,
) -> np.ndarray:
    p = len(model.phi)
    if p == 0 or model.residuals.size == 0:
        out = rng.choice(a, size=(n_streams, length))
        if parameter_noise:
            dof = max(a.size - 1, 1)
            bounds = group_bounds(n_streams, min(n_groups, n_streams))
            sd = np.sqrt(rng.chisquare(dof, size=bounds.size - 1) / dof)
            out = model.mean + (out - model.mean) * np.repeat(sd, np.diff(bounds))[:, None]
        return np.asarray(out, dtype=float)
    phi_hat = np.asarray(model.phi)
    groups = min(n_groups, n_streams) if parameter_noise else 1
    bounds = group_bounds(n_streams, groups)
    out = np.empty((n_streams, length))
    dof = max(model.residuals.size - p, 1)
    for g in range(groups):
        phi, gain = phi_hat, 1.0
        if parameter_noise:
            phi = _stationary_draw(phi_hat, model.phi_cov, rng)
            gain = math.sqrt(rng.chisquare(dof) / dof)
        s = float(np.sum(np.abs(phi)))
        burn = int(min(2000, max(50, 10 * p / max(1e-3, 1.0 - min(s, 0.999)))))
        rows = bounds[g + 1] - bounds[g]
        e = rng.choice(model.residuals, size=(rows, burn + length)) * gain
        den = np.concatenate(([1.0], -phi))
        out[bounds[g] : bounds[g + 1]] = signal.lfilter([1.0], den, e, axis=1)[:, burn:]
    return model.mean + out


def _stationary_draw(phi: np.ndarray, cov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``phi`` redrawn from N(phi, cov), keeping only stationary draws."""
    for _ in range(20):
        cand = rng.multivariate_normal(phi, cov)
        if np.all(np.abs(np.roots(np.concatenate(([1.0], -cand)))) < 0.995):
            return cand
    return phi


def block_length(persistence: float, n: int) -> int:
    """Block length for a bootstrap: ``2 x`` the integrated autocorrelation time.

    ``persistence`` is a lag-1-like autocorrelation ``r``; an AR(1) with that
    ``r`` has integrated time ``(1 + r) / (1 - r)``. Capped at ``n / 4``.

    Examples
    --------
    >>> block_length(0.85, 1000), block_length(0.0, 1000)
    (25, 2)
    """
    r = min(max(float(persistence), 0.0), 0.99)
    tau = (1.0 + r) / (1.0 - r)
    return int(min(max(1, round(2 * tau)), max(1, n // 4)))


def block_bootstrap_indices(
    n: int, n_streams: int, length: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_streams, length)`` indices into a length-``n`` reference: circular block bootstrap.

    Examples
    --------
    >>> idx = block_bootstrap_indices(10, 2, 7, 3, np.random.default_rng(0))
    >>> idx.shape, bool(((idx[:, 1] - idx[:, 0]) % 10 == 1).all())
    ((2, 7), True)
    """
    n_blocks = -(-length // block)
    starts = rng.integers(0, n, size=(n_streams, n_blocks, 1))
    idx = (starts + np.arange(block)) % n
    return idx.reshape(n_streams, -1)[:, :length]


def surrogate_streams(
    x: Sequence[float] | np.ndarray,
    n_streams: int,
    length: int,
    *,
    rng: np.random.Generator,
    method: SurrogateMethod = "ar",
    model: ARModel | None = None,
    level_noise: bool = True,
    parameter_noise: bool = True,
    n_groups: int = N_GROUPS,
    max_order: int = 5,
) -> np.ndarray:
    """``(n_streams, length)`` streams that look like the reference ``x``.

    ``"ar"``: the AR(p) fit driven by innovations resampled from its residuals,
    burnt in so each stream starts stationary. ``"block"``: circular block
    bootstrap with block length ``~ 2 x`` the integrated autocorrelation time.
    ``"iid"``: values resampled independently (throws the correlation away;
    for contrast only). ``level_noise`` adds a per-stream offset
    ``~ N(0, long_run_variance / n)``: the error of the reference mean.
    Streams come in ``n_groups`` consecutive groups, each one plausible
    "world": drawn parameters and level offset are shared within a group.
    ``parameter_noise`` (``"ar"`` only) draws the AR coefficients and the
    innovation scale of each group of streams from their sampling
    distribution: a short correlated reference pins ``phi`` only loosely, and
    the long-run variance ``~ 1 / (1 - phi)^2`` -- hence the false-alarm rate
    -- is very sensitive to it. The calibrated threshold then keeps ``ert``
    on average over what the reference could not rule out.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = ar1_stream(rng, 1000, rho=0.85)
    >>> s = surrogate_streams(ref, 64, 500, rng=rng)
    >>> s.shape, bool(0.7 < np.corrcoef(s[:, 1:].ravel(), s[:, :-1].ravel())[0, 1] < 0.95)
    ((64, 500), True)
    """
    a = _finite_1d(x)
    model = model or fit_ar(a, max_order=max_order)
    if method == "iid":
        out = rng.choice(a, size=(n_streams, length))
    elif method == "block":
        block = block_length(sum(model.phi) if model.phi else 0.0, a.size)
        out = a[block_bootstrap_indices(a.size, n_streams, length, block, rng)]
    elif method == "ar":
        out = _ar_surrogates(a, model, n_streams, length, rng, parameter_noise, n_groups)
    else:
        raise ValueError(f"unknown surrogate method {method!r}")
    if level_noise and a.size > 0:
        # One offset per world: the reference mean's error is the same for
        # every stream of the world it describes.
        sd = math.sqrt(max(model.long_run_variance, 0.0) / a.size)
        bounds = group_bounds(n_streams, min(n_groups, n_streams))
        offsets = rng.normal(0.0, sd, size=bounds.size - 1)
        out = out + np.repeat(offsets, np.diff(bounds))[:, None]
    return np.asarray(out, dtype=float)


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


class ArlEstimator:
    """Mean run length to the first alarm, for any threshold, from statistic paths.

    Parameters
    ----------
    paths
        ``(n_streams, horizon)`` statistic of a detector started fresh on each
        surrogate stream and never restarted; ``-inf`` where it may not fire.
        An alarm at update ``t`` (1-based) for threshold ``h`` means
        ``paths[i, t - 1] > h``.
    burn_fraction
        Share of the horizon before which the run-length distribution may not
        yet have reached its geometric tail.
    n_groups
        Consecutive rows form this many groups ("worlds") that share drawn
        parameters (see ``surrogate_streams``); rates are averaged over them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = ArlEstimator(rng.standard_normal((400, 1000)))   # i.i.d. N(0,1), no memory
    >>> h = 2.5   # P(z > 2.5) = 0.00621 -> ARL 161
    >>> 140 < est.arl(h)[0] < 185
    True
    """

    def __init__(
        self, paths: np.ndarray, *, burn_fraction: float = 0.25, n_groups: int = 1
    ) -> None:
        paths = np.asarray(paths, dtype=float)
        self.n_streams, self.horizon = paths.shape
        # Running maximum: the first passage over h is where it crosses h.
        self._runmax = np.maximum.accumulate(paths, axis=1)
        self._burn = max(1, min(self.horizon - 1, int(self.horizon * burn_fraction)))
        self._rows = np.arange(self.n_streams)
        n_groups = max(1, min(int(n_groups), self.n_streams))
        self._starts = group_bounds(self.n_streams, n_groups)[:-1]
        self._sizes = np.diff(group_bounds(self.n_streams, n_groups))

    def _counts(self, h: float) -> np.ndarray:
        """Per stream, how many updates stay at or below ``h`` (a row-wise binary search)."""
        lo = np.zeros(self.n_streams, dtype=np.int64)
        hi = np.full(self.n_streams, self.horizon, dtype=np.int64)
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            mid_c = np.minimum(mid, self.horizon - 1)
            ok = self._runmax[self._rows, mid_c] <= h
            lo = np.where(active & ok, mid + 1, lo)
            hi = np.where(active & ~ok, mid, hi)

    def arl(self, h: float) -> tuple[float, int]:
        """``(estimated ARL, number of streams that fired within the horizon)`` at ``h``.

        Per group (one plausible world: parameters and level drawn once),
        ``ARL_g = E[min(tau, T0)] + P(tau > T0) / hazard_g``; the result is
        ``1 / mean_g(1 / ARL_g)``: the long-run false-alarm *rate* averaged
        over worlds (not the mean run length, which a few quiet worlds
        would inflate).
        """
        c = self._counts(h)
        big = np.iinfo(np.int64).max // 4
        tau = np.where(c < self.horizon, c + 1, big)
        t0, T = self._burn, self.horizon
        fired = tau <= T
        alive = tau > t0
        late = alive & fired
        exposure = np.where(alive, np.minimum(tau, T) - t0, 0)

        def per_group(v: np.ndarray) -> np.ndarray:
            return np.add.reduceat(v.astype(float), self._starts)

        part1 = per_group(np.minimum(tau, t0)) / self._sizes
        n_alive = per_group(alive)
        n_late = per_group(late)
        expo = per_group(exposure)
        with np.errstate(divide="ignore", invalid="ignore"):
            arl_g = np.where(
                n_alive == 0,
                part1,
                part1 + (n_alive / self._sizes) * expo / np.maximum(n_late, 1e-300),
            )
            rate = np.where(np.isfinite(arl_g) & (arl_g > 0), 1.0 / arl_g, 0.0)
        mean_rate = float(rate.mean())
        n_fired = int(np.count_nonzero(fired))
        if mean_rate <= 0.0:
            return math.inf, n_fired
        return 1.0 / mean_rate, n_fired

    @property
    def max_statistic(self) -> float:
        """Largest value the statistic reached on any stream."""
        return float(self._runmax[:, -1].max())


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
    lo, hi = _lowest_finite(estimator), top
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if estimator.arl(mid)[1] >= min_events:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * max(1.0, abs(hi)):
            break
    h_rel = lo
    arl_rel, ev_rel = estimator.arl(h_rel)

    if arl_rel >= ert:
        lo, hi = _lowest_finite(estimator), h_rel
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if estimator.arl(mid)[0] >= ert:
                hi = mid
            else:
                lo = mid
            if hi - lo <= tol * max(1.0, abs(hi)):
                break
        arl, ev = estimator.arl(hi)
        return ThresholdFit(hi, arl, "simulated", ev, estimator.n_streams, estimator.horizon)

    slope = _log_arl_slope(estimator, h_rel, arl_rel, min_events)
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


def _lowest_finite(estimator: ArlEstimator) -> float:
    finite = estimator._runmax[np.isfinite(estimator._runmax)]
    return float(finite.min()) if finite.size else 0.0


def _log_arl_slope(
    estimator: ArlEstimator, h_rel: float, arl_rel: float, min_events: int
) -> float | None:
    """Slope of ``log ARL`` in ``h`` over the reliably estimated upper range."""
    # Fit over thresholds whose ARL spans about a factor of 10 below arl_rel,
    # where the tail is already geometric and still well estimated.
    lo = _lowest_finite(estimator)
    hs = np.linspace(lo, h_rel, 40)
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


def _finite_1d(x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("empty reference")
    if not np.isfinite(a).all():
        raise ValueError("reference holds NaN or infinite values")
    return a
