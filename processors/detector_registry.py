"""Detector kinds by name: build one calibrated on a reference, or from a checkpoint.

The monitor names detectors by kind in its configuration and checkpoints;
this is the one place that maps a kind to a class and its calibration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from processors import calibration
from processors.detectors import Adwin, Cusum, Ddm, PageHinkley, WindowedMMD
from processors.detectors.base import Detector
from processors.detectors.cusum import Side, cusum_paths
from processors.detectors.windowed import PSI, ChiSquaredMix, WindowedKS, window_paths

_CLASSES: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (Adwin, Cusum, Ddm, PageHinkley, ChiSquaredMix, PSI, WindowedKS, WindowedMMD)
}


# Smallest CUSUM threshold, in tolerance units: a single frame outside the band
# must not be enough to alert, a sustained excursion must be. People and
# occluders pass a camera for tens of frames at ~1.2 tolerances; at 10 they
# accumulate ~0.2 per frame and do not alert, a real shift of 2 tolerances
# alerts after ~10 frames (measured: bench/bench_monitor.py).
H_MIN = 10.0
# Window of the class-mix test: the reference (``reference_size``, 200 by
# default, at least 50) must hold at least two windows; shorter references
# get half their length.
MIX_WINDOW = 100
MIX_BINS = 10
# A class gets its own bin only with at least this share of the reference;
# the rest are pooled into "other". Chi-squared divides by the expected count,
# so a bin of a class seen once in the reference (p ~ 0.005) turns a camera
# whose view wanders onto that object for a few seconds into a statistic in
# the hundreds; pooled, that is what it is: some mass moved to rarer classes.
MIX_MIN_SHARE = 0.05
# The mix test's threshold is at least this multiple of the largest statistic
# the reference's own windows reach against the reference (the analogue of
# the scalar signals' moving-average envelope: a mix the reference itself
# showed for a whole window is the scene's own variation, not a change).
# Measured on 4 simulated cameras x 19,000 clean frames: 1.5 gave 7 false
# alarms, 3 gave 3, 5 gave 1, each catching the same class-mix shifts at once.
MIX_ENVELOPE = 5.0


def class_mix_detector(labels: np.ndarray, ert: float, *, seed: int = 0) -> ChiSquaredMix:
    """Chi-squared class-mix test on class indices, pooled and floored (see above).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.choice([0, 1, 2, 3], p=[0.6, 0.3, 0.08, 0.02], size=200)
    >>> det = class_mix_detector(ref, ert=10_000)
    >>> det.classes, det.window, det.calibration["envelope"] > 0
    ([0, 1, 2], 100, True)
    """
    labels = np.asarray(labels).astype(int)
    window = min(MIX_WINDOW, labels.size // 2)
    _, counts = np.unique(labels, return_counts=True)
    frequent = int((counts >= MIX_MIN_SHARE * labels.size).sum())
    bins = max(2, min(MIX_BINS, frequent + 1))
    det = ChiSquaredMix.calibrated(labels, ert, window=window, bins=bins, categorical=True,
                                   seed=seed)
    bin_idx = np.array([det.bin_of(c) for c in labels])
    own = window_paths("chi2", bin_idx[None, :], det.probs, window, det.n_bins)[0]
    envelope = float(own[window - 1 :].max())
    info = {**det.calibration, "envelope": envelope, "calibrated_threshold": det.threshold}
    threshold = max(det.threshold, MIX_ENVELOPE * envelope)
    return ChiSquaredMix(det.probs.tolist(), window, threshold, classes=det.classes,
                         calibration=info)


def is_constant(reference: np.ndarray) -> bool:
    """True when a reference never moved (a grey camera's saturation, a fixed resolution).

    >>> is_constant(np.full(10, 3.0)), is_constant(np.arange(10.0))
    (True, False)
    """
    ref = np.asarray(reference, dtype=float)
    return bool(np.ptp(ref) <= 1e-12 * max(1.0, float(np.abs(ref).max())))


def _constant_detector(
    kind: str, reference: np.ndarray, tolerance: float | None, track: float, why: str
) -> Detector:
    """A detector that alerts on sustained moves beyond the tolerance, uncalibrated.

    For a reference with no variation at all (and for ``tolerance_up``).
    Calibration by simulation has nothing to simulate (every surrogate stays
    at the reference value, no threshold gives the requested run length) and
    used to raise, which stopped the stream's monitor on a greyscale camera.
    A signal that never moved alerts on any sustained move beyond its
    tolerance: ``H_MIN`` tolerance units, so a jump of twice the tolerance
    fires after ~10 frames and a resolution change at once.
    """
    mean = float(np.mean(reference))
    spread = 2.5 * float(np.std(reference))
    tol = max(float(tolerance or 0.0), spread) or 1e-6 * max(1.0, abs(mean))
    info = {"method": "tolerance_only", "reason": why, "value": mean, "tolerance": tol}
    if kind == "page_hinkley":
        return PageHinkley(min_instances=1, delta=tol, threshold=H_MIN * tol, calibration=info)
    side: Side = "up" if kind == "cusum_up" else "both"
    return Cusum(mean=mean, scale=tol, k=1.0, h=H_MIN, side=side, track=track, calibration=info)


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
    stream, where labels make observations close to independent. DDM
    (``"ddm"``) is not calibrated either: it takes the same 0/1 error stream
    and ignores ``reference``.
    """
    reference = np.asarray(reference, dtype=float)
    if kind in ("cusum", "cusum_up", "page_hinkley") and is_constant(reference):
        return _constant_detector(kind, reference, tolerance, track, "constant reference")
    if kind == "tolerance_up":
        # A share over a sliding window (output.new_classes) is nearly constant
        # with lag-1 autocorrelation ~0.99: an AR fit of 200 such values
        # extrapolates thresholds of 100+ tolerance units (a class-mix change was
        # missed for that). Its false-alarm rate is measured, not simulated:
        # bench/README.md.
        return _constant_detector("cusum_up", reference, tolerance, track,
                                  "windowed share: measured, not simulated")
    try:
        return _calibrated(kind, reference, ert=ert, seed=seed, tolerance=tolerance, track=track)
    except ValueError as exc:
        if kind not in ("cusum", "cusum_up", "page_hinkley"):
            raise
        # A reference whose surrogates never reach any threshold (a few
        # discrete values: boxes per frame, counts) has no finite threshold for
        # the run length asked; raising here would stop the stream's monitor.
        # Fall back to alerting on sustained moves beyond the tolerance.
        return _constant_detector(kind, reference, tolerance, track, str(exc))


def _calibrated(
    kind: str,
    reference: np.ndarray,
    *,
    ert: float,
    seed: int,
    tolerance: float | None,
    track: float,
) -> Detector:
    if kind in ("cusum", "cusum_up"):
        # "cusum_up": one-sided, for scores that only rise under drift (an
        # outlier score, a share of new classes): a fall back to normal after
        # a change is not a second change.
        side: Side = "up" if kind == "cusum_up" else "both"
        det = Cusum.calibrated(reference, ert=ert, k=1.0, seed=seed, side=side)
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
                lambda streams: cusum_paths((streams - mean) / scale, 1.0, side),
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
        return Cusum(mean=mean, scale=scale, k=1.0, h=h, side=side, track=track,
                     calibration=info)
    if kind == "page_hinkley":
        # Page-Hinkley ignores deviations below ``delta``: the tolerance,
        # so changes smaller than the scene's own variation do not accumulate.
        delta = None
        if tolerance is not None:
            profile_scale = float(np.std(reference))
            delta = max(0.5 * profile_scale, tolerance)
        return PageHinkley.calibrated(reference, ert=ert, seed=seed, delta=delta)
    if kind == "chi2_mix":
        # Class indices; a mix that never moved is still a valid reference
        # (every window of other classes is then a change).
        return class_mix_detector(reference, ert, seed=seed)
    if kind == "adwin":
        return Adwin()
    if kind == "ddm":
        return Ddm()
    if kind == "windowed_mmd":
        # ``reference`` is (n, k): the reference embeddings' PCA projections.
        return WindowedMMD.calibrated(np.asarray(reference), ert, seed=seed, track=track)
    raise ValueError(
        f"unknown detector kind {kind!r}; known: cusum, cusum_up, tolerance_up, page_hinkley, "
        "chi2_mix, "
        "adwin, ddm, windowed_mmd"
    )


def detector_from_state(state: dict[str, Any]) -> Detector:
    """Rebuild any registered detector from its ``state()``."""
    cls = _CLASSES.get(state.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown detector type {state.get('type')!r} in checkpoint")
    return cls.from_state(state)
