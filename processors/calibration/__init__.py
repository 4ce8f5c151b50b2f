"""Thresholds from a reference that respect autocorrelation.

Camera frames are strongly correlated (lag-1 autocorrelation ~0.85 on
embedding distances). A threshold calibrated as if observations were
independent fires 20-150x too often on video (``docs/anchors.md``). This package
calibrates by simulation on surrogate streams that keep the reference's
autocorrelation. One job per module, each importing only from the ones
before it:

1. ``robust``: median and MAD (x1.4826) location and scale with a floor, so
   a constant-ish reference cannot give a zero scale; the clipped mean; the
   check that a reference is non-empty and finite.
2. ``ar``: an AR(p) model by Yule-Walker, order chosen by BIC; its long-run
   variance ``sigma_e^2 / (1 - sum(phi))^2`` and effective sample size
   ``n * variance / long_run_variance``; ``ar1_stream`` test data.
3. ``reference_profile``: all of the above for one reference in a
   ``ReferenceProfile``, and the short-reference guard
   ``between_block_inflation`` (level changes the AR model does not explain
   inflate the scale).
4. ``surrogates``: many long streams from the fitted AR(p) (or a block or
   i.i.d. bootstrap), in "worlds" that each draw the AR coefficients,
   innovation scale and level offset from their sampling distribution.
5. ``run_length``: ``ArlEstimator``, the mean run length ``ARL(h)`` for any
   threshold from a detector's statistic paths on the surrogates, by the
   geometric tail of the run-length distribution, false-alarm rates
   averaged over worlds.
6. ``threshold``: ``solve_threshold`` (bisection on ``h``, ``log ARL``
   extrapolated linearly beyond the simulated range), ``calibrate_threshold``
   (all steps in one call) and ``split_budget`` (several signals on one
   stream share its alarm budget).

Examples
--------
>>> import numpy as np
>>> from processors import calibration
>>> ref = calibration.ar1_stream(np.random.default_rng(0), 1000, rho=0.85)
>>> fit = calibration.calibrate_threshold(ref, 1000.0, lambda s: s, seed=1)
>>> fit.method, bool(fit.threshold > calibration.profile_reference(ref).location)
('simulated', True)
"""

from __future__ import annotations

from processors.calibration.ar import (
    ARModel,
    ar1_stream,
    effective_sample_size,
    fit_ar,
    long_run_variance,
)
from processors.calibration.reference_profile import (
    ReferenceProfile,
    between_block_inflation,
    profile_reference,
)
from processors.calibration.robust import robust_location_scale
from processors.calibration.run_length import ArlEstimator
from processors.calibration.surrogates import N_GROUPS, SurrogateMethod, surrogate_streams
from processors.calibration.threshold import (
    ThresholdFit,
    calibrate_threshold,
    solve_threshold,
    split_budget,
)

__all__ = [
    "N_GROUPS",
    "ARModel",
    "ArlEstimator",
    "ReferenceProfile",
    "SurrogateMethod",
    "ThresholdFit",
    "ar1_stream",
    "between_block_inflation",
    "calibrate_threshold",
    "effective_sample_size",
    "fit_ar",
    "long_run_variance",
    "profile_reference",
    "robust_location_scale",
    "solve_threshold",
    "split_budget",
    "surrogate_streams",
]
