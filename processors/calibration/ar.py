"""Dependence of a reference: Yule-Walker AR(p) fit, long-run variance, effective sample size.

Holds ``ARModel`` (the fit, with its long-run variance and effective sample
size), ``fit_ar`` (Yule-Walker, order ``p <= max_order`` chosen by BIC), the
one-call helpers ``long_run_variance`` and ``effective_sample_size``, and
``ar1_stream``, a stationary AR(1) generator for tests, doctests and
benchmarks.

Failure mode guarded against: camera frames are strongly correlated (lag-1
autocorrelation ~0.85 on embedding distances), and a threshold calibrated as
if observations were independent fires 20-150x too often on video
(``docs/anchors.md``). The variance of a mean of ``n`` correlated values is
``long_run_variance / n`` with ``long_run_variance = sigma_e^2 / (1 -
sum(phi))^2``, not ``variance / n``; 1,000 frames at lag-1 0.85 are worth
only ~80 independent ones (``n * variance / long_run_variance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg, signal

from processors.calibration.robust import finite_1d


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

    @property
    def effective_sample_size(self) -> float:
        """``n * variance / long_run_variance`` (``n`` for a reference that never moved)."""
        lrv = self.long_run_variance
        if lrv <= 0.0:
            return float(self.n)
        return float(self.n * self.variance / lrv)


def fit_ar(x: Sequence[float] | np.ndarray, *, max_order: int = 5) -> ARModel:
    """Yule-Walker AR(p) fit, ``p`` in ``0..max_order`` chosen by BIC.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = fit_ar(ar1_stream(rng, 5000, rho=0.8), max_order=3)
    >>> round(m.phi[0], 1), len(m.phi) <= 3
    (0.8, True)
    """
    a = finite_1d(x)
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
    >>> effective_sample_size([3.0] * 50)   # never moved: every value counts
    50.0
    """
    return fit_ar(x, max_order=max_order).effective_sample_size


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
