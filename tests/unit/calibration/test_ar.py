"""AR fit: effective sample size, one definition for the helper and the model."""

from __future__ import annotations

import numpy as np
import pytest

from processors.calibration.ar import ar1_stream, effective_sample_size, fit_ar


def test_effective_sample_size_of_correlated_and_constant_references() -> None:
    x = ar1_stream(np.random.default_rng(0), 20_000, rho=0.85)
    m = fit_ar(x)
    assert effective_sample_size(x) == m.effective_sample_size
    assert m.effective_sample_size == pytest.approx(20_000 * 0.15 / 1.85, rel=0.2)
    flat = fit_ar([2.0] * 40)
    assert flat.long_run_variance == 0.0
    assert flat.effective_sample_size == 40.0
