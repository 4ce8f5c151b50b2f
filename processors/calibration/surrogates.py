"""Surrogate streams that look like a reference, grouped into "worlds".

Holds ``surrogate_streams`` and its parts: the AR(p) surrogate driven by
innovations resampled from the fit's residuals (keeps the autocorrelation and
roughly the marginal), the circular block bootstrap (``block_length``,
``block_bootstrap_indices``), the i.i.d. bootstrap (to show the contrast
only), and the grouping of streams into worlds (``N_GROUPS``,
``group_bounds``, ``world_bounds``).

Failure mode guarded against: a short correlated reference pins its own
parameters only loosely (1,000 frames at lag-1 0.85 are worth ~80
independent ones), and the long-run variance ``~ 1 / (1 - phi)^2`` -- hence
the false-alarm rate -- is very sensitive to ``phi``. A threshold set on
streams from the point estimate alone fires too often in the worlds the
reference could not rule out. So the streams come in groups -- "worlds" --
each with its own draw of the AR coefficients and innovation scale from
their sampling distribution, and its own level offset
``~ N(0, long_run_variance / n)`` (the error of the reference mean, which a
detector centred on it sees as a permanent small shift).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import signal

from processors.calibration.ar import ARModel, fit_ar
from processors.calibration.robust import finite_1d

SurrogateMethod = Literal["ar", "block", "iid"]

N_GROUPS = 50


def group_bounds(n_streams: int, n_groups: int) -> np.ndarray:
    """Row boundaries of ``n_groups`` consecutive, near-equal groups of streams.

    Examples
    --------
    >>> group_bounds(10, 3).tolist()
    [0, 3, 6, 10]
    """
    return np.linspace(0, n_streams, n_groups + 1).astype(int)


def world_bounds(n_streams: int, n_groups: int) -> np.ndarray:
    """``group_bounds`` with the number of worlds clipped to ``1..n_streams``.

    Examples
    --------
    >>> world_bounds(4, 50).tolist(), world_bounds(4, 0).tolist()
    ([0, 1, 2, 3, 4], [0, 4])
    """
    return group_bounds(n_streams, max(1, min(int(n_groups), n_streams)))


def _per_world(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """One value per world -> a column with that value on each of the world's rows."""
    return np.repeat(values, np.diff(bounds))[:, None]


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
            bounds = world_bounds(n_streams, n_groups)
            sd = np.sqrt(rng.chisquare(dof, size=bounds.size - 1) / dof)
            out = model.mean + (out - model.mean) * _per_world(sd, bounds)
        return np.asarray(out, dtype=float)
    phi_hat = np.asarray(model.phi)
    bounds = world_bounds(n_streams, n_groups if parameter_noise else 1)
    out = np.empty((n_streams, length))
    dof = max(model.residuals.size - p, 1)
    for g in range(bounds.size - 1):
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
    >>> from processors.calibration.ar import ar1_stream
    >>> rng = np.random.default_rng(0)
    >>> ref = ar1_stream(rng, 1000, rho=0.85)
    >>> s = surrogate_streams(ref, 64, 500, rng=rng)
    >>> s.shape, bool(0.7 < np.corrcoef(s[:, 1:].ravel(), s[:, :-1].ravel())[0, 1] < 0.95)
    ((64, 500), True)
    """
    a = finite_1d(x)
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
        bounds = world_bounds(n_streams, n_groups)
        offsets = rng.normal(0.0, sd, size=bounds.size - 1)
        out = out + _per_world(offsets, bounds)
    return np.asarray(out, dtype=float)
