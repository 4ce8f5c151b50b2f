"""Robust location and scale: the floor and the input check."""

from __future__ import annotations

import pytest

from processors.calibration.robust import finite_1d, robust_location_scale


def test_robust_scale_has_a_floor() -> None:
    loc, scale = robust_location_scale([0.99] * 999 + [0.5])
    assert loc == 0.99 and scale > 0
    with pytest.raises(ValueError):
        robust_location_scale([1.0, float("nan")])


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        finite_1d([])
