"""What calibration learns about a reference: the profile and the short-reference guard.

Holds ``profile_reference`` (robust location and scale, clipped mean, AR fit,
long-run variance, effective sample size and inflation in one
``ReferenceProfile``, JSON-safe via ``as_dict``) and
``between_block_inflation``.

Failure mode guarded against: a short reference with level changes its AR
model does not describe (people come and go, the view wanders). The
reference is cut into blocks; if the block means spread more than the AR
model predicts (``long_run_variance / block_length``), the scale is inflated
by ``sqrt(observed / predicted)`` (never below 1, capped). Thresholds are
calibrated on the uninflated scale, then the detector standardises with the
inflated one: the ``ert`` holds on data like the reference, and level
wandering up to the observed between-block spread costs no extra alarms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from processors.calibration.ar import ARModel, fit_ar
from processors.calibration.robust import clipped_mean, finite_1d, robust_location_scale


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
    >>> from processors.calibration.ar import ar1_stream
    >>> rng = np.random.default_rng(3)
    >>> between_block_inflation(ar1_stream(rng, 4000, rho=0.5)) < 1.6
    True
    >>> steps = np.repeat(rng.normal(0, 3, 8), 500) + rng.normal(0, 1, 4000)
    >>> between_block_inflation(steps) > 2
    True
    """
    a = finite_1d(x)
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
    >>> from processors.calibration.ar import ar1_stream
    >>> rng = np.random.default_rng(4)
    >>> p = profile_reference(ar1_stream(rng, 2000, rho=0.85))
    >>> p.n, p.effective_sample_size < 400, p.inflation >= 1.0
    (2000, True, True)
    """
    a = finite_1d(x)
    model = fit_ar(a, max_order=max_order)
    loc, scale = robust_location_scale(a)
    return ReferenceProfile(
        n=int(a.size),
        location=loc,
        mean=clipped_mean(a),
        scale=scale,
        inflation=between_block_inflation(a, model),
        ar=model.phi,
        variance=model.variance,
        long_run_variance=model.long_run_variance,
        effective_sample_size=model.effective_sample_size,
    )
