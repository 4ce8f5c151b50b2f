"""Robust location and scale of a reference, floored, and its input check.

Holds the median/MAD location and scale (``robust_location_scale``), the
clipped mean a CUSUM is centred on (``clipped_mean``) and ``finite_1d``, the
check every calibration step applies to a reference.

Failure mode guarded against: a constant-ish reference (saturated
confidence, a class mix that never moves) has MAD 0, and a detector that
standardises by a zero scale alarms on the first frame that differs; a
single gross outlier in a short reference moves a plain mean. An empty
reference or one holding NaN or infinity is refused here, before it can
turn into a NaN threshold further up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAD_TO_SIGMA = 1.482602218505602
MEAN_ABS_TO_SIGMA = 1.2533141373155002


def finite_1d(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """``x`` as a flat float array; raises on an empty reference or NaN/infinite values.

    Examples
    --------
    >>> finite_1d([[1, 2], [3, 4]]).tolist()
    [1.0, 2.0, 3.0, 4.0]
    >>> finite_1d([1.0, float("inf")])
    Traceback (most recent call last):
    ...
    ValueError: reference holds NaN or infinite values
    """
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise ValueError("empty reference")
    if not np.isfinite(a).all():
        raise ValueError("reference holds NaN or infinite values")
    return a


def robust_location_scale(
    x: Sequence[float] | np.ndarray, *, abs_floor: float = 1e-9
) -> tuple[float, float]:
    """Median and MAD-based scale, floored.

    When the MAD is 0 (most values equal: saturated confidence, a class that
    never changes) the scale falls back to the mean absolute deviation from
    the median (x1.2533, unbiased for a normal), then to
    ``abs_floor * max(1, |median|)``, so a reference never yields scale 0.

    Examples
    --------
    >>> robust_location_scale([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.482602218505602)
    >>> robust_location_scale([1.0] * 9 + [2.0])
    (1.0, 0.12533141373155002)
    >>> robust_location_scale([1.0] * 10)[1] > 0
    True
    """
    a = finite_1d(x)
    med = float(np.median(a))
    dev = np.abs(a - med)
    floor = abs_floor * max(1.0, abs(med))
    scale = float(np.median(dev)) * MAD_TO_SIGMA
    if scale <= floor:
        scale = float(dev.mean()) * MEAN_ABS_TO_SIGMA
    return med, max(scale, floor)


def clipped_mean(x: Sequence[float] | np.ndarray, *, clip: float = 4.0) -> float:
    """Mean of ``x`` clipped to ``median +- clip * robust scale``.

    A CUSUM must be centred on the mean (centred on the median, a skewed
    signal such as a distance drifts up under no change); clipping keeps one
    gross outlier in a short reference from moving the centre.

    Examples
    --------
    >>> round(clipped_mean([0.0, 1.0, 2.0, 3.0, 1e6]), 3)   # 1e6 clipped to 2 + 4 * 1.483
    2.786
    """
    a = finite_1d(x)
    med, scale = robust_location_scale(a)
    return float(np.mean(np.clip(a, med - clip * scale, med + clip * scale)))
