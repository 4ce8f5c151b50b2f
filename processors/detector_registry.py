"""Detector kinds by name: build one calibrated on a reference, or from a checkpoint.

The monitor names detectors by kind in its configuration and checkpoints;
this is the one place that maps a kind to a class and its calibration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from processors import calibration
from processors.detectors import Adwin, Cusum, PageHinkley, WindowedMMD
from processors.detectors.base import Detector
from processors.detectors.cusum import cusum_paths

_CLASSES: dict[str, type[Detector]] = {
    cls.name: cls for cls in (Adwin, Cusum, PageHinkley, WindowedMMD)
}


# Smallest CUSUM threshold, in tolerance units: a single frame outside the band
# must not be enough to alert, a sustained excursion must be. People and
# occluders pass a camera for tens of frames at ~1.2 tolerances; at 10 they
# accumulate ~0.2 per frame and do not alert, a real shift of 2 tolerances
# alerts after ~10 frames (measured: bench/bench_monitor.py).
H_MIN = 10.0


def make_detector(
    kind: str,
    reference: np.ndarray,
    *,
    ert: float,
    seed: int = 0,
    tolerance: float | None = None,
    track: float = 0.0,
) -> Detector:
    """A detector of ``kind`` calibrated on ``reference`` for ``ert`` updates per false alarm.

    ``tolerance`` (in the signal's units; for Page-Hinkley it sets ``delta``) is the smallest change
    worth an alert. A reference of a few hundred frames does not cover a
    camera's natural variation (the view wanders, light changes over hours),
    so a CUSUM whose scale comes from the reference alone fires on that
    variation. With a tolerance the CUSUM standardises by
    ``max(reference scale, tolerance)`` with allowance ``k = 1``: only the part
    of a deviation beyond the tolerance band accumulates. Its threshold is the
    calibrated one rescaled to the wider scale, which is conservative (a wider
    scale can only lengthen the run length on data like the reference), and
    never below ``H_MIN``.

    ``track`` (CUSUM and windowed MMD) lets the baseline follow slow natural
    wander; see ``processors.detectors.Cusum`` and ``WindowedMMD``.
    ``windowed_mmd`` takes an ``(n, k)`` reference of PCA projections.

    ADWIN is not threshold-calibrated (its ``delta`` bounds the false-alarm
    probability per check on independent data); it is used on the error
    stream, where labels make observations close to independent.
    """
    if kind == "cusum":
        det = Cusum.calibrated(reference, ert=ert, k=1.0, seed=seed)
        det.track = float(track)
        if tolerance is None or tolerance <= det.scale:
            return det
        mean, scale = det.mean, float(tolerance)
        # Same surrogates (same seed) as the calibration above, standardised by
        # the tolerance instead of the reference scale.
        info: dict[str, Any] = {**det.calibration, "tolerance": scale}
        try:
            fit = calibration.calibrate_threshold(
                reference,
                ert,
                lambda streams: cusum_paths((streams - mean) / scale, 1.0),
                seed=seed,
            )
            h = max(H_MIN, fit.threshold)
            info["fit_tolerance"] = fit.as_dict()
        except ValueError as exc:
            # The surrogates almost never leave the tolerance band, too rarely to
            # extrapolate a run length. Rescaling the reference-scale threshold
            # to the wider scale is conservative (a wider scale only lengthens
            # run lengths on data like the reference).
            h = max(H_MIN, det.h * det.scale / scale)
            info["fit_tolerance"] = {"method": "rescaled", "reason": str(exc)}
        return Cusum(mean=mean, scale=scale, k=1.0, h=h, track=track, calibration=info)
    if kind == "page_hinkley":
        # Page-Hinkley ignores deviations below ``delta``: the tolerance,
        # so changes smaller than the scene's own variation do not accumulate.
        delta = None
        if tolerance is not None:
            profile_scale = float(np.std(reference))
            delta = max(0.5 * profile_scale, tolerance)
        return PageHinkley.calibrated(reference, ert=ert, seed=seed, delta=delta)
    if kind == "adwin":
        return Adwin()
    if kind == "windowed_mmd":
        # ``reference`` is (n, k): the reference embeddings' PCA projections.
        return WindowedMMD.calibrated(np.asarray(reference), ert, seed=seed, track=track)
    raise ValueError(
        f"unknown detector kind {kind!r}; known: cusum, page_hinkley, adwin, windowed_mmd"
    )


def detector_from_state(state: dict[str, Any]) -> Detector:
    """Rebuild any registered detector from its ``state()``."""
    cls = _CLASSES.get(state.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown detector type {state.get('type')!r} in checkpoint")
    return cls.from_state(state)
