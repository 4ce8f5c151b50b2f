"""Mean run length to a false alarm, for any threshold, from a detector's statistic paths.

Holds ``ArlEstimator``. A detector supplies the *path* of its statistic on
every surrogate stream without restarts (vectorised in numpy: CUSUM is a
Lindley recursion, ``S_t = W_t - min(0, min_{s<=t} W_s)`` with ``W`` a
cumulative sum). Because the path does not depend on the threshold ``h``,
the first-passage time of every stream for any ``h`` is a binary search on
the running maximum, so the mean run length ``ARL(h)`` costs microseconds
per ``h`` and bisection on ``h`` is free.

Failure mode guarded against: an ``ert`` of 10,000+ updates cannot be
simulated to first alarm on every stream, and an estimate that treats
censored streams as alarms at the horizon (or drops them) is biased towards
short run lengths, hence too-low thresholds. ``ARL(h)`` is estimated from
paths much shorter than ``ert`` by the geometric tail of the run-length
distribution: ``ARL = E[min(tau, T0)] + P(tau > T0) / lambda`` where the
hazard ``lambda`` is the alarm rate per update of the streams still alive
between a burn-in ``T0`` and the horizon ``T`` (events / exposure; the
censored exponential MLE), computed per world; the worlds' false-alarm
*rates* ``1 / ARL_g`` are averaged (a mean of run lengths would let a few
quiet worlds hide the noisy ones).
"""

from __future__ import annotations

import math

import numpy as np

from processors.calibration.surrogates import world_bounds


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
        bounds = world_bounds(self.n_streams, n_groups)
        self._starts = bounds[:-1]
        self._sizes = np.diff(bounds)

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

    @property
    def min_statistic(self) -> float:
        """Smallest finite value of the running maximum on any stream (0.0 if none).

        The lowest threshold worth searching: below it every stream fires at
        its first finite update.

        Examples
        --------
        >>> est = ArlEstimator(np.array([[-np.inf, 3.0, 1.0], [2.0, 5.0, 4.0]]))
        >>> est.min_statistic, est.max_statistic
        (2.0, 5.0)
        """
        finite = self._runmax[np.isfinite(self._runmax)]
        return float(finite.min()) if finite.size else 0.0
