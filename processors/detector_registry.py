"""Detector kinds by name: build one calibrated on a reference, or from a checkpoint.

The monitor names detectors by kind in its configuration and checkpoints;
this is the one place that maps a kind to a builder (``KINDS``: kind ->
``Kind(build, takes)``) and a checkpoint ``type`` to a class
(``DETECTOR_CLASSES``, whose ``State`` models form the discriminated union
``AnyDetectorState`` that ``detector_from_state`` validates through).

Adding a detector kind is one entry in ``KINDS`` (and, for a new class, one
in ``DETECTOR_CLASSES``); ``tests/unit/detectors/test_detector_contract.py``
then runs the state contract over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import Field, TypeAdapter

from processors import calibration
from processors.detectors import (
    PSI,
    Adwin,
    ChiSquaredMix,
    Cusum,
    Ddm,
    PageHinkley,
    PCADetector,
    WindowedKS,
    WindowedMMD,
)
from processors.detectors.base import Detector, DetectorState
from processors.detectors.cusum import Side, cusum_paths
from processors.detectors.mix_cusum import MixCusum
from processors.detectors.state import StateVersionError, load_with
from processors.detectors.windowed import window_paths

# Every detector class a checkpoint may name (its ``State`` model's ``type``).
DETECTOR_CLASSES: tuple[type[Detector[Any]], ...] = (
    Adwin, Cusum, Ddm, PageHinkley, ChiSquaredMix, PSI, WindowedKS, WindowedMMD, PCADetector,
    MixCusum,
)
_CLASSES: dict[str, type[Detector[Any]]] = {cls.name: cls for cls in DETECTOR_CLASSES}
_CLASS_OF_MODEL: dict[type[Any], type[Detector[Any]]] = {
    cls.State: cls for cls in DETECTOR_CLASSES
}

if TYPE_CHECKING:
    AnyDetectorState = DetectorState
else:
    # The discriminated union of every registered detector's state model.
    AnyDetectorState = Annotated[
        Union[tuple(cls.State for cls in DETECTOR_CLASSES)],  # noqa: UP007
        Field(discriminator="type"),
    ]
DETECTOR_STATE: TypeAdapter[DetectorState] = TypeAdapter(AnyDetectorState)


# Smallest CUSUM threshold, in tolerance units: a single frame outside the band
# must not be enough to alert, a sustained excursion must be. People and
# occluders pass a camera for tens of frames at ~1.2 tolerances; at 10 they
# accumulate ~0.2 per frame and do not alert, a real shift of 2 tolerances
# alerts after ~10 frames (measured: bench/bench_monitor.py).
H_MIN = 10.0
# ... at this ERT (updates per false alarm, per signal): the monitor's old default
# (10,000 events per stream split over 21 calibrated signals). Above it the
# floor grows with ln(ERT) (``h_floor``): on the tolerance scale a CUSUM's run
# length grows like exp(c h), so a floor fixed at 10 made every budget above
# ~2e5 the same (the issue #11 measurement: ERT 10^4 and 10^6 fired at the same
# frames). Below it the floor stays at ``H_MIN``.
H_MIN_ERT = 210_000.0


def h_floor(ert: float) -> float:
    """Smallest CUSUM threshold (tolerance units) for ``ert`` updates per false alarm.

    >>> h_floor(1000.0), h_floor(H_MIN_ERT), round(h_floor(H_MIN_ERT ** 2), 6)
    (10.0, 10.0, 20.0)
    """
    if not (math.isfinite(ert) and ert > H_MIN_ERT):
        return H_MIN
    return H_MIN * math.log(ert) / math.log(H_MIN_ERT)
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


# The class-mix CUSUMs (``MixCusum``, the detector of ``output.class_mix``): blocks of
# 100 predictions (10 s at 10 frames/s) wait 30 blocks (5 min) before they enter
# the baseline mix, whose half-life is 3,000 predictions (5 min): a change is
# tested against the mix of before it for 5 minutes, while a mix that wanders
# over 10 minutes is followed. Each class's CUSUM is tuned to its share
# quadrupling (or falling to a quarter): a share that moves by less than
# ~x2.2 ((r - 1) / ln r) drifts it down. Tuned on the simulated cameras 21-24
# (bench/README.md): at 3 the wander alone (shares x2 against the baseline for
# minutes) fired 2 times in 50,000 clean frames of one camera.
MIX_RATIO = 4.0
# ... and the calibrated threshold (sticky-Markov surrogates, whose mix does not
# wander) is doubled: at 1x the clean wander of cameras 21-23 crossed it 39 times in
# 3 x 1,000,000 frames (0.5 camera-weeks), at 1.5x 7 times, at 1.75x and 2x never
# (the tripled class on camera 21: 1,325 / 2,042 / 2,448 / 2,747 frames).
MIX_MARGIN = 2.0
MIX_BLOCK = 100
MIX_LAG_BLOCKS = 30
MIX_HALFLIFE = 3000.0


def mix_cusum_detector(labels: np.ndarray, ert: float, *, seed: int = 0) -> MixCusum:
    """Per-class CUSUMs against a lagged tracking mix, classes under 5% pooled (see above).

    A reference shorter than four blocks gets blocks of a quarter of its length.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.choice([0, 1, 2, 3], p=[0.6, 0.3, 0.08, 0.02], size=200)
    >>> det = mix_cusum_detector(ref, ert=10_000)
    >>> det.classes, det.block, det.lag_blocks * det.block
    ([0, 1, 2], 50, 3000)
    """
    labels = np.asarray(labels, dtype=float)
    block = max(1, min(MIX_BLOCK, labels.size // 4))
    return MixCusum.calibrated(labels, ert, bins=MIX_BINS, min_share=MIX_MIN_SHARE,
                               ratio=MIX_RATIO, margin=MIX_MARGIN, block=block,
                               lag_blocks=round(MIX_LAG_BLOCKS * MIX_BLOCK / block),
                               halflife=MIX_HALFLIFE, seed=seed)


def is_constant(reference: np.ndarray) -> bool:
    """True when a reference never moved (a grey camera's saturation, a fixed resolution).

    >>> is_constant(np.full(10, 3.0)), is_constant(np.arange(10.0))
    (True, False)
    """
    ref = np.asarray(reference, dtype=float)
    return bool(np.ptp(ref) <= 1e-12 * max(1.0, float(np.abs(ref).max())))


def _constant_detector(
    kind: str, reference: np.ndarray, tolerance: float | None, track: float, why: str,
    ert: float = H_MIN_ERT,
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
    h = h_floor(ert)
    if kind == "page_hinkley":
        return PageHinkley(min_instances=1, delta=tol, threshold=h * tol, calibration=info)
    side: Side = "up" if kind == "cusum_up" else "both"
    return Cusum(mean=mean, scale=tol, k=1.0, h=h, side=side, track=track, calibration=info)


Takes = Literal["scalar", "bits", "classes", "projections", "embeddings"]
Builder = Callable[[np.ndarray, float, int, "float | None", float], Detector[Any]]


@dataclass(frozen=True)
class Kind:
    """How to build a detector kind, and what it watches.

    ``build(reference, ert, seed, tolerance, track)``. ``takes`` is what
    ``reference`` holds and ``update`` expects: ``"scalar"`` floats,
    ``"bits"`` 0/1 (the reference is ignored), ``"classes"`` class indices,
    ``"projections"`` k-vectors (an ``(n, k)`` reference of PCA
    projections), ``"embeddings"`` d-vectors (an ``(n, d)`` reference).
    """

    build: Builder
    takes: Takes


def _cusum(side: Side) -> Builder:
    def build(
        reference: np.ndarray, ert: float, seed: int, tolerance: float | None, track: float
    ) -> Detector[Any]:
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
            h = max(h_floor(ert), fit.threshold)
            info["fit_tolerance"] = fit.as_dict()
        except ValueError as exc:
            # The surrogates almost never leave the tolerance band, too rarely to
            # extrapolate a run length: on data like the reference this CUSUM
            # does not accumulate at all, and the floor (growing with ln ERT) is
            # what stands between the scene's unseen variation and an alert.
            # (Rescaling the reference-scale threshold to the wider scale, as
            # before, gave thresholds of 250-2,600 tolerance units at a weekly
            # budget -- 1.5e8 updates per signal -- and a blind signal.)
            h = h_floor(ert)
            info["fit_tolerance"] = {"method": "floor", "reason": str(exc),
                                     "rescaled": det.h * det.scale / scale}
        return Cusum(mean=mean, scale=scale, k=1.0, h=h, side=side, track=track,
                     calibration=info)

    return build


def _page_hinkley(
    reference: np.ndarray, ert: float, seed: int, tolerance: float | None, track: float
) -> Detector[Any]:
    # Page-Hinkley ignores deviations below ``delta``: the tolerance,
    # so changes smaller than the scene's own variation do not accumulate.
    delta = None
    if tolerance is not None:
        profile_scale = float(np.std(reference))
        delta = max(0.5 * profile_scale, tolerance)
    return PageHinkley.calibrated(reference, ert=ert, seed=seed, delta=delta)


def _or_tolerance_only(kind: str, build: Builder) -> Builder:
    """``build``, falling back to ``_constant_detector`` where calibration cannot work."""

    def safe(
        reference: np.ndarray, ert: float, seed: int, tolerance: float | None, track: float
    ) -> Detector[Any]:
        if is_constant(reference):
            return _constant_detector(kind, reference, tolerance, track, "constant reference",
                                      ert)
        try:
            return build(reference, ert, seed, tolerance, track)
        except ValueError as exc:
            # A reference whose surrogates never reach any threshold (a few
            # discrete values: boxes per frame, counts) has no finite threshold
            # for the run length asked; raising here would stop the stream's
            # monitor. Fall back to alerting on sustained moves beyond the tolerance.
            return _constant_detector(kind, reference, tolerance, track, str(exc), ert)

    return safe


def _tolerance_up(
    reference: np.ndarray, ert: float, seed: int, tolerance: float | None, track: float
) -> Detector[Any]:
    # A share over a sliding window (output.new_classes) is nearly constant
    # with lag-1 autocorrelation ~0.99: an AR fit of 200 such values
    # extrapolates thresholds of 100+ tolerance units (a class-mix change was
    # missed for that). Its false-alarm rate is measured, not simulated:
    # bench/README.md.
    return _constant_detector("cusum_up", reference, tolerance, track,
                              "windowed share: measured, not simulated", ert)


def _windowed(cls: type[WindowedKS] | type[PSI]) -> Builder:
    def build(
        reference: np.ndarray, ert: float, seed: int, tolerance: float | None, track: float
    ) -> Detector[Any]:
        # Two windows of the reference at least (the 200-frame default needs 400).
        return cls.calibrated(reference, ert, window=min(200, reference.size // 2), seed=seed)

    return build


KINDS: dict[str, Kind] = {
    "cusum": Kind(_or_tolerance_only("cusum", _cusum("both")), "scalar"),
    # "cusum_up": one-sided, for scores that only rise under drift (an
    # outlier score, a share of new classes): a fall back to normal after
    # a change is not a second change.
    "cusum_up": Kind(_or_tolerance_only("cusum_up", _cusum("up")), "scalar"),
    "tolerance_up": Kind(_tolerance_up, "scalar"),
    "page_hinkley": Kind(_or_tolerance_only("page_hinkley", _page_hinkley), "scalar"),
    "windowed_ks": Kind(_windowed(WindowedKS), "scalar"),
    "psi": Kind(_windowed(PSI), "scalar"),
    # Class indices; a mix that never moved is still a valid reference
    # (every window of other classes is then a change).
    "chi2_mix": Kind(lambda ref, ert, seed, tol, track: class_mix_detector(ref, ert, seed=seed),
                     "classes"),
    # The same, against a lagged mix that tracks slow wander (output.class_mix's).
    "mix_cusum": Kind(lambda ref, ert, seed, tol, track: mix_cusum_detector(ref, ert, seed=seed),
                      "classes"),
    "adwin": Kind(lambda ref, ert, seed, tol, track: Adwin(), "bits"),
    "ddm": Kind(lambda ref, ert, seed, tol, track: Ddm(), "bits"),
    # The reference embeddings' PCA projections, (n, k).
    "windowed_mmd": Kind(
        lambda ref, ert, seed, tol, track: WindowedMMD.calibrated(ref, ert, seed=seed,
                                                                  track=track),
        "projections",
    ),
    # The reference embeddings themselves, (n, d).
    "pca_cusum": Kind(lambda ref, ert, seed, tol, track: PCADetector.calibrated(ref, ert,
                                                                                seed=seed),
                      "embeddings"),
}


def make_detector(
    kind: str,
    reference: np.ndarray,
    *,
    ert: float,
    seed: int = 0,
    tolerance: float | None = None,
    track: float = 0.0,
) -> Detector[Any]:
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
    ``windowed_mmd`` takes an ``(n, k)`` reference of PCA projections,
    ``pca_cusum`` an ``(n, d)`` reference of embeddings (``PCADetector``: k = 8
    components; ``tolerance`` and ``track`` do not apply).

    ADWIN is not threshold-calibrated (its ``delta`` bounds the false-alarm
    probability per check on independent data); it is used on the error
    stream, where labels make observations close to independent. DDM
    (``"ddm"``) is not calibrated either: it takes the same 0/1 error stream
    and ignores ``reference``.

    >>> sorted(KINDS)  # doctest: +NORMALIZE_WHITESPACE
    ['adwin', 'chi2_mix', 'cusum', 'cusum_up', 'ddm', 'mix_cusum', 'page_hinkley', 'pca_cusum',
     'psi', 'tolerance_up', 'windowed_ks', 'windowed_mmd']
    """
    entry = KINDS.get(kind)
    if entry is None:
        raise ValueError(f"unknown detector kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return entry.build(np.asarray(reference, dtype=float), ert, seed, tolerance, track)


def detector_from_state(state: Mapping[str, Any]) -> Detector[Any]:
    """Rebuild any registered detector from its ``state()``.

    The state is validated through ``AnyDetectorState`` (the discriminated
    union of every registered detector's model): ``StateVersionError`` (a
    ``ValueError``) names the type, version or field that does not fit.
    """
    kind = state.get("type") if isinstance(state, Mapping) else None
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise StateVersionError(
            f"unknown detector type {kind!r} in checkpoint; known: {', '.join(sorted(_CLASSES))}"
        )
    cls.State.check_header(state)
    return detector_from_model(load_with(DETECTOR_STATE.validate_python, state, cls.name))


def detector_from_model(model: DetectorState) -> Detector[Any]:
    """Rebuild a registered detector from its validated state model."""
    return _CLASS_OF_MODEL[type(model)].from_model(model)
