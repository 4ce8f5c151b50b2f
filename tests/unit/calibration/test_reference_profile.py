"""Reference profile: autocorrelation seen, levels the AR model does not explain flagged."""

from __future__ import annotations

import numpy as np
import pytest

from processors.calibration.ar import ar1_stream
from processors.calibration.reference_profile import between_block_inflation, profile_reference
from processors.detectors import Cusum


def test_profile_sees_autocorrelation() -> None:
    x = ar1_stream(np.random.default_rng(0), 50_000, rho=0.85)
    p = profile_reference(x)
    assert p.ar[0] == pytest.approx(0.85, abs=0.02)
    assert p.long_run_variance == pytest.approx(1.85 / 0.15, rel=0.2)
    assert p.effective_sample_size == pytest.approx(50_000 * 0.15 / 1.85, rel=0.2)
    assert p.scale == pytest.approx(1.0, rel=0.05)


def test_inflation_flags_levels_the_ar_model_does_not_explain() -> None:
    rng = np.random.default_rng(1)
    flat = ar1_stream(rng, 2000, rho=0.5)
    steps = flat + np.repeat(rng.normal(0, 2, 8), 250)
    assert between_block_inflation(flat) < 1.5
    assert between_block_inflation(steps) > 2.0
    det = Cusum.calibrated(steps, ert=1000)
    assert det.calibration["inflation"] > 2.0
    info = det.calibration
    assert det.scale == pytest.approx(info["profile"]["scale"] * info["inflation"])
