"""Run-length estimation against a brute-force run."""

from __future__ import annotations

import numpy as np
import pytest

from processors.calibration.ar import ar1_stream
from processors.calibration.run_length import ArlEstimator
from processors.detectors import Cusum
from processors.detectors.cusum import cusum_paths


@pytest.mark.slow
def test_arl_estimator_agrees_with_brute_force() -> None:
    """Known AR(1) process: estimated ARL(h) from 2,000-step paths vs a 400k-step run."""
    rng = np.random.default_rng(5)
    z = ar1_stream(rng, 2000, rho=0.85, shape=(1000,))
    est = ArlEstimator(cusum_paths(z, 0.5))
    h = 50.0
    predicted, _ = est.arl(h)
    det, alarms, n = Cusum(0.0, 1.0, 0.5, h), 0, 400_000
    for x in ar1_stream(rng, n, rho=0.85).tolist():
        det.update(x)
        alarms += det.drift_detected
    realized = n / alarms
    assert predicted == pytest.approx(realized, rel=0.35), (predicted, realized)
