"""How fast *any* detector could catch a model-output shift: Lorden's lower bound on the delay.

A detector that raises at most one false alarm per ``gamma`` events cannot,
in the worst case over change points, detect a change from distribution
``P0`` to ``P1`` faster than about ``ln(gamma) / I`` events on average, where
``I`` is the Kullback-Leibler divergence rate of ``P1`` from ``P0`` per event
(Lorden 1971; Lai 1998 for dependent data). The bound assumes the detector
knows ``P0``, ``P1`` and which class changes, and that nothing else moves:
driftline knows none of that and the simulated camera's mix wanders, so a
real detector is slower. The bench (``bench/bench_outputs.py``) prints the
bound next to the measured delay: a delay within a small factor of it is near
what the budget allows, and a shift whose bound is close to the delay window
cannot be caught reliably in that window at that budget by any detector.

Two shifts of ``bench.simulated_classifier``:

- a class-mix change on a sticky chain (keep the previous class with
  probability ``stay``, else draw from the mix): ``markov_kl_rate``;
- a drop of a correlated scalar's mean by ``delta``: the rate of a Gaussian
  stationary process, ``delta**2 / (2 * long-run variance)``
  (``mean_shift_kl_rate``; the long-run variance from batch means,
  ``long_run_variance``).
"""

from __future__ import annotations

import math

import numpy as np


def markov_kl_rate(p0: np.ndarray, p1: np.ndarray, stay: float) -> float:
    """KL divergence rate, per event, of a sticky chain over mix ``p1`` from one over ``p0``.

    The chain keeps the previous class with probability ``stay``, else draws
    from the mix: ``P(d | a) = stay [d = a] + (1 - stay) p(d)``. The rate is
    ``sum_a p1(a) sum_d P1(d | a) ln(P1(d | a) / P0(d | a))`` (``p1`` is
    the stationary law of the ``p1`` chain). A class ``p0`` never draws makes
    it infinite.

    Examples
    --------
    >>> p0, p1 = np.array([0.9, 0.1]), np.array([0.75, 0.25])
    >>> round(markov_kl_rate(p0, p1, 0.0), 4)          # independent draws: KL(p1 || p0)
    0.0923
    >>> round(markov_kl_rate(p0, p1, 0.85), 4)         # persistence hides most of it
    0.0097
    """
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    if ((p1 > 0) & (p0 <= 0)).any():
        return math.inf
    eye = np.eye(p0.size)
    t0 = stay * eye + (1.0 - stay) * p0[None, :]
    t1 = stay * eye + (1.0 - stay) * p1[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t1 > 0, t1 * np.log(t1 / t0), 0.0)
    return float((p1 * terms.sum(axis=1)).sum())


def long_run_variance(x: np.ndarray, batch: int) -> float:
    """Long-run variance of a series (``n`` times the variance of its mean), from batch means.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(long_run_variance(rng.normal(size=1_000_000), 100), 2)   # white noise: its variance
    1.01
    """
    x = np.asarray(x, dtype=float)
    n = x.size // batch
    if n < 2:
        raise ValueError(f"{x.size} values make fewer than 2 batches of {batch}")
    means = x[: n * batch].reshape(n, batch).mean(axis=1)
    return float(batch * means.var(ddof=1))


def mean_shift_kl_rate(delta: float, lrv: float) -> float:
    """KL rate, per event, of a stationary Gaussian process whose mean moved by ``delta``.

    >>> round(mean_shift_kl_rate(0.1, 0.5), 6)
    0.01
    """
    return delta * delta / (2.0 * lrv)


def lorden_delay(gamma: float, rate: float) -> float:
    """``ln(gamma) / rate``: the least worst-case delay at one false alarm per ``gamma`` events.

    >>> round(lorden_delay(6_048_000, 0.0097))       # a week at 10 events/s
    1610
    >>> lorden_delay(1e6, math.inf)
    0.0
    """
    return math.log(gamma) / rate if rate > 0 else math.inf
