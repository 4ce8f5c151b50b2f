"""One scalar signal of one stream: reference → calibrated detector → detections.

Life cycle of a signal:

1. ``warming_up``: the first ``reference_size`` values are the reference
   (kept in a bounded list, dropped once the detector is calibrated);
2. ``ok``: a detector calibrated on that reference to the signal's share of
   the stream's false-alarm budget watches every new value;
3. on a detection the signal reports once, then re-references: it skips
   ``cooldown`` values (a gradual change is still ramping), collects a new
   reference from the values after that and recalibrates. One change yields
   one alert, not an alert every few frames while the change persists;
4. on demand (``rereference``: an operator command, an acknowledged change)
   the signal goes back to ``warming_up`` at once, without an alert or a
   cooldown; ``reference_state``/``load_reference`` carry a calibrated
   detector into a new monitor (reference bundles, ``processors.bundles``).

Memory is bounded per signal: the reference (≤ ``reference_size`` floats,
only while warming up) and fixed-length deques of recent values and of the
stream indices of recent updates (to translate the detector's change-point
estimate back into a stream index and event id).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from processors.detector_registry import AnyDetectorState, detector_from_model, make_detector
from processors.detectors.base import Detector
from processors.detectors.cusum import Cusum
from processors.detectors.state import Checkpointable, Float, FloatList, FloatOrNull, StateModel

RECENT = 64
# A held detection is confirmed when the signal's level is still this many
# tolerance units (the CUSUM's allowance ``k * scale``) beyond the baseline.
PERSIST_LEVEL = 0.5
# ... over the last tenth of the ``persist`` values (at least 5): the change is
# still there now, not merely for most of the time since it began.
PERSIST_TAIL = 10
PERSIST_TAIL_MIN = 5
INDEX_HISTORY = 1024

Status = Literal["warming_up", "ok", "drift"]


class SignalReferenceState(StateModel):
    """The calibrated part of a signal (``ScalarSignal.reference_state``), for bundles."""

    type: Literal["signal_reference"] = "signal_reference"
    version: Literal[1] = 1
    detector_kind: str
    ert: Float
    tolerance: tuple[Float, Float] | None
    track: Float
    detector: AnyDetectorState
    ref_mean: FloatOrNull
    ref_scale: FloatOrNull
    # The EWMA half-life the detector was calibrated on (0: raw values); a
    # bundle written before smoothing existed watched raw values.
    smooth: Float = 0.0


class PendingChange(StateModel):
    """A CUSUM detection waiting to be confirmed as lasting (``ScalarSignal.persist``)."""

    type: Literal["pending_change"] = "pending_change"
    version: Literal[1] = 1
    detection: dict[str, Any]
    direction: int
    baseline: Float
    scale: Float
    # Updates since the estimated change point, including the current one.
    age: int
    values: FloatList


class ScalarSignalState(StateModel):
    """Checkpoint of a ``ScalarSignal``: parameters, detector, reference, recent history."""

    type: Literal["scalar_signal"] = "scalar_signal"
    version: Literal[1] = 1
    name: str
    detector_kind: str
    ert: Float
    reference_size: int
    cooldown: int
    seed: int
    tolerance: tuple[Float, Float] | None
    track: Float = 0.0
    status: Status
    detector: AnyDetectorState | None
    reference: FloatList
    # NaN is not JSON (the state topic carries null): ``null`` until calibrated.
    ref_mean: FloatOrNull
    ref_scale: FloatOrNull
    skip: int
    updates: int
    last_alert_id: str | None
    recent: FloatList
    indices: list[int]
    # Persistence (``persist`` updates from the change point; 0 = off) and a
    # detection waiting for it (``PendingChange``); transients seen so far.
    persist: int = 0
    slow: AnyDetectorState | None = None
    pending: PendingChange | None = None
    transients: int = 0
    fast: int = 0
    # The slow twin's allowance in tolerances (``TWIN_K``, below, unless the
    # catalogue says otherwise); a checkpoint without it had the default.
    twin_k: Float = 2.0
    # The EWMA the signal watches instead of its raw values (``smooth``
    # updates half-life; 0: raw) and its current level; a checkpoint without
    # them watched raw values.
    smooth: Float = 0.0
    smoothed: FloatOrNull = float("nan")
    smoothed_n: int = 0


@dataclass(frozen=True)
class Detection:
    """What a signal reports when its detector fires."""

    signal: str
    detector: str
    statistic: float
    threshold: float
    expected: float
    observed: float
    detected_index: int
    change_index: int
    reference_scale: float
    p_value: float | None = None
    note: str = ""


FIXED_DETECTOR = "cusum_fixed"
# The twin's baseline tracks this many times slower (half-life 3,000 events at
# the default 300): a ramp over 1,500 frames is barely followed, a lighting
# cycle of hours is. A twin that never tracked fired 29 times in 25,200 clean
# frames of wandering simulated cameras (bench/bench_quality.py).
TWIN_SLOWER = 10.0
# ... and accumulates only deviations beyond twice the allowance (2 tolerances
# for the monitor's CUSUMs): with the same allowance it fired 15 times where
# the tracking CUSUMs fired 6 (25,200 clean frames); with twice, 7.
TWIN_K = 2.0


def _fixed_twin(det: Detector, k: float = TWIN_K) -> Cusum | None:
    """A tracking CUSUM's long-horizon twin: slow drift (issue #11).

    A tracking baseline follows wander slower than its half-life, and with it
    a change ramping in over many half-lives (haze thickening over minutes):
    the deviation it leaves stays inside the tolerance band. The twin has the
    same reference mean, scale and threshold, ``k`` (``TWIN_K`` unless the
    signal's catalogue row says otherwise) times the allowance,
    and tracks ``TWIN_SLOWER`` times slower, so a ramp that takes the signal
    beyond two tolerances of the long-run level fires it (reported as detector
    ``cusum_fixed``); on data like the reference the two behave alike. None
    for a detector that does not track.
    """
    if not isinstance(det, Cusum) or det.track <= 0:
        return None
    return Cusum(mean=det.mean, scale=det.scale, k=k * det.k, h=det.h, side=det.side,
                 track=det.track / TWIN_SLOWER,
                 calibration={"twin_of": "tracking cusum", "track_slower": TWIN_SLOWER})


@dataclass(frozen=True)
class CalibrationRequest:
    """What a signal's detector is calibrated from: plain data, picklable (a child process).

    ``ScalarSignal`` builds one when its reference is full (``calibration``);
    ``calibrate`` turns it into the detectors, the expensive part (Monte-Carlo
    thresholds, 0.05-0.35 s), which is pure: the same request gives the same
    detectors in any process. ``token`` names the reference it was built on
    (the signal's count of updates then), so a result that arrives after the
    signal moved on (re-referenced, restored, calibrated inline) is refused
    by ``ScalarSignal.install``.
    """

    signal: str
    kind: str
    reference: np.ndarray
    ert: float
    seed: int
    tolerance: float | None
    track: float
    twin_k: float
    token: int


@dataclass(frozen=True)
class Calibrated:
    """The detectors ``calibrate`` built for a ``CalibrationRequest`` (picklable)."""

    signal: str
    token: int
    detector: Detector[Any]
    slow: Cusum | None


def calibrate(request: CalibrationRequest) -> Calibrated:
    """The calibrated detector and its slow twin (``_fixed_twin``) for ``request``; pure.

    What ``ScalarSignal`` runs inline, and what ``processors.calibration_pool``
    runs in a child process: both give the same thresholds.

    >>> rng = np.random.default_rng(0)
    >>> req = CalibrationRequest("demo", "cusum", rng.normal(size=200), ert=1e4, seed=1,
    ...                          tolerance=0.5, track=0.01, twin_k=2.0, token=200)
    >>> out = calibrate(req)
    >>> out.detector.threshold == calibrate(req).detector.threshold, out.slow is not None
    (True, True)
    """
    det = make_detector(request.kind, request.reference, ert=request.ert, seed=request.seed,
                        tolerance=request.tolerance, track=request.track)
    return Calibrated(request.signal, request.token, det, _fixed_twin(det, request.twin_k))


def _robust_scale(ref: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of ``ref``, else its standard deviation."""
    med = float(np.median(ref))
    return float(1.4826 * np.median(np.abs(ref - med))) or float(ref.std())


def reference_envelope(ref: np.ndarray) -> float:
    """Range of the reference's moving average (window: a tenth of the reference).

    A camera's scene wanders (the view drifts, light changes) on time scales
    longer than single frames; a level the reference itself visited for tens
    of frames is the scene's own variation, not a change worth an alert.

    >>> round(reference_envelope(np.r_[np.zeros(50), np.ones(50)]), 6)
    1.0
    """
    w = max(5, len(ref) // 10)
    if len(ref) < w:
        return 0.0
    ma = np.convolve(ref, np.ones(w) / w, mode="valid")
    return float(ma.max() - ma.min())


class ScalarSignal(Checkpointable[ScalarSignalState]):
    """Tracks one scalar signal; ``update`` returns a ``Detection`` or None.

    Parameters
    ----------
    name : str
        Signal name, e.g. ``quality.brightness``.
    detector : str
        Detector kind known to ``processors.detectors.make_detector``.
    ert : float
        Expected updates between false alarms for this signal alone.
    reference_size : int
        Values collected before the detector is calibrated.
    cooldown : int
        Values skipped after a detection before re-referencing.
    seed : int
        Seed of the calibration's simulations (reproducible thresholds).
    track : float
        Baseline tracking weight of a CUSUM (``0``: fixed reference mean).
    tolerance : tuple of float
        ``(relative, absolute)``: the smallest change worth an alert is
        ``max(relative * |reference mean|, absolute, 2.5 * reference std,
        reference envelope)`` (see ``reference_envelope``)
        (CUSUM signals; see ``processors.detector_registry.make_detector``).
    persist : int
        Updates a change must last, counted from the detector's change-point
        estimate, before it is reported (CUSUM detectors; 0: report when the
        detector fires). When the detector fires earlier, the detection waits:
        if ``persist`` updates after the change point the signal's level (the
        mean of the values since the detection and of the last quarter of them)
        is still more than ``PERSIST_LEVEL`` tolerance units beyond the baseline
        the detector compared with, in the direction it fired, the detection is
        reported then (``detected_index`` later by at most ``persist``,
        ``change_index`` unchanged); otherwise it was transient (a person
        walking through the view): counted in ``transients``, nothing reported,
        and the detector watches on from its pre-change baseline.
    fast : int
        The fast path for global changes (0: off): a held detection is decided
        as soon as it is ``fast`` updates old if every update since its change
        point was *calm* -- ``update``'s ``calm`` (the run of consecutive calm
        frames, ``processors.monitor.features.TileFeatures``) covers its age:
        nothing local moved in the view, or (nearly) all of it changed at once.
        A passer-by is local and keeps the full ``persist``.
    smooth : float
        Half-life, in updates, of an exponentially weighted moving average
        the signal's detector watches instead of its raw values (0: raw). For
        a signal whose per-update noise is wide against the change worth an
        alert (a classifier's confidence): the reference, tolerance and
        detector see the average; the recent values, the persistence check
        and what an alert reports as ``observed`` are the raw values (the
        average still converging on a new level would understate it, and
        would remember a transient that has ended). The first values weigh
        ``1/n`` (a running mean) until that is lighter than the EWMA's weight.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> s = ScalarSignal("demo", "cusum", ert=1000, reference_size=200, cooldown=10)
    >>> hits = [i for i in range(600)
    ...         if s.update(rng.normal() + (4.0 if i >= 400 else 0.0), i)]
    >>> len(hits) >= 1 and 400 <= hits[0] < 420
    True
    """

    State = ScalarSignalState

    def __init__(
        self,
        name: str,
        detector: str,
        *,
        ert: float,
        reference_size: int,
        cooldown: int,
        seed: int = 0,
        tolerance: tuple[float, float] | None = None,
        track: float = 0.0,
        persist: int = 0,
        fast: int = 0,
        twin_k: float = TWIN_K,
        smooth: float = 0.0,
    ) -> None:
        self.name = name
        self.smooth = float(smooth)
        self.smoothed = float("nan")
        self.smoothed_n = 0  # values in the average (its weight is 1/n while that is heavier)
        self.twin_k = float(twin_k)
        self.persist = int(persist)
        self.fast = int(fast)
        self.pending: PendingChange | None = None
        self.transients = 0
        self.track = float(track)
        self.tolerance = tolerance
        self.detector_kind = detector
        self.ert = float(ert)
        self.reference_size = int(reference_size)
        self.cooldown = int(cooldown)
        self.seed = int(seed)
        self.status: Status = "warming_up"
        self.detector: Detector | None = None
        # The fixed-reference twin of a tracking CUSUM (``_fixed_twin``).
        self.slow: Cusum | None = None
        self.reference: list[float] = []
        self.ref_mean = float("nan")
        self.ref_scale = float("nan")
        self.skip = 0
        self.updates = 0
        self.last_alert_id: str | None = None
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.indices: deque[int] = deque(maxlen=INDEX_HISTORY)
        # Deferred calibration (``defer``): a full reference waits here, as a
        # request, for ``install``; not checkpointed (the reference is).
        self.deferred = False
        self.calibration: CalibrationRequest | None = None

    # -- observing -----------------------------------------------------------------

    def update(self, value: float, index: int, calm: int | None = None) -> Detection | None:
        """Feed one value observed at stream index ``index``.

        ``calm``: consecutive calm frames up to this one (see ``fast``), or None.
        """
        self.updates += 1
        self.recent.append(value)
        self.indices.append(index)
        raw = value
        if self.smooth > 0:
            value = self._smoothed(value)
        if self.skip > 0:
            self.skip -= 1
            return None
        if self.detector is None and (request := self.pending_calibration()) is not None:
            # Deferred, and its result not installed (or restored from a
            # checkpoint taken while it was pending): calibrate now, before
            # this value, on the same reference -- what inline mode did one
            # value earlier, so the detector sees the same values.
            self.install(calibrate(request))
        if self.detector is None:
            self.reference.append(value)
            if len(self.reference) >= self.reference_size:
                self._calibrate()
            return None
        if self.pending is not None:
            return self._confirm(raw, index, calm)
        assert self.detector is not None
        self.detector.update(value)
        fired: Detector | None = self.detector if self.detector.drift_detected else None
        if self.slow is not None:
            self.slow.update(value)
            if fired is None and self.slow.drift_detected:
                fired = self.slow
        if fired is None:
            return None
        if self.persist > 0 and isinstance(fired, Cusum):
            return self._hold(index, fired, calm)
        return self._detection(index, fired)

    def _smoothed(self, value: float) -> float:
        """The EWMA (half-life ``smooth`` updates) after ``value``; a running mean at first."""
        prev = self.smoothed
        if not math.isfinite(prev):
            prev, self.smoothed_n = value, 0
        self.smoothed_n += 1
        weight = max(1.0 - 0.5 ** (1.0 / self.smooth), 1.0 / self.smoothed_n)
        self.smoothed = prev + weight * (value - prev)
        return self.smoothed

    def _fast(self, calm: int | None) -> bool:
        """The held change is old enough and everything since it began was calm."""
        p = self.pending
        return (p is not None and self.fast > 0 and calm is not None
                and p.age >= self.fast and calm >= p.age)

    def _hold(self, index: int, det: Cusum, calm: int | None = None) -> Detection | None:
        """A detector fired: report now if the change already lasted, else wait."""
        detection = self._detection(index, det, rereference=False)
        age = det.change_offset + 1
        seen = list(self.recent)[-min(age, len(self.recent)):]
        self.pending = PendingChange(
            detection=dataclasses.asdict(detection), direction=det.direction,
            baseline=det.mean, scale=det.scale * det.k, age=age, values=seen,
        )
        if age >= self.persist or self._fast(calm):
            return self._decide(index)
        return None

    def _confirm(self, value: float, index: int, calm: int | None = None) -> Detection | None:
        assert self.pending is not None
        self.pending.age += 1
        self.pending.values.append(value)
        if len(self.pending.values) > self.persist:
            del self.pending.values[0]
        if self.pending.age < self.persist and not self._fast(calm):
            return None
        return self._decide(index)

    def _decide(self, index: int) -> Detection | None:
        p = self.pending
        assert p is not None and self.detector is not None
        self.pending = None
        vals = np.asarray(p.values, dtype=float)
        tail = vals[-max(PERSIST_TAIL_MIN, len(vals) // PERSIST_TAIL):]
        level = p.direction * (float(tail.mean()) - p.baseline)
        if level > PERSIST_LEVEL * p.scale:
            det = Detection(**{**p.detection, "detected_index": index,
                               "observed": float(vals.mean())})
            self._rereference_after_detection()
            return det
        # Transient: the detector fired on something that went away. It resets
        # itself on its next update; its baseline is the one from before.
        self.transients += 1
        return None

    def _calibrate(self) -> None:
        """The reference is full: calibrate now, or (``deferred``) leave a request.

        The cheap part (reference mean and scale, status) is done here in both
        modes: an alert of another signal in this same event reads them
        (``zscore``), so deferred and inline alerts carry the same movers.
        """
        self.calibration = self._request()
        self.ref_scale = _robust_scale(self.calibration.reference)
        if self.status == "warming_up":
            self.status = "ok"
        if not self.deferred:
            self.install(calibrate(self.calibration))

    def _request(self) -> CalibrationRequest:
        """The calibration request of the full reference (sets ``ref_mean``)."""
        ref = np.asarray(self.reference, dtype=np.float64)
        self.ref_mean = float(ref.mean())
        tol = None
        if self.tolerance is not None:
            rel, absolute = self.tolerance
            settled = ref[self._unsettled(len(ref)):]
            tol = max(rel * abs(self.ref_mean), absolute, 2.5 * float(settled.std()),
                      reference_envelope(settled))
        return CalibrationRequest(
            signal=self.name, kind=self.detector_kind, reference=ref, ert=self.ert,
            seed=self.seed, tolerance=tol, track=self.track, twin_k=self.twin_k,
            token=self.updates)

    def defer(self, deferred: bool = True) -> None:
        """Leave calibrations as ``calibration`` requests for someone else to compute.

        A deferred signal whose reference fills keeps it (and so its
        checkpoint keeps it) and calibrates nothing; ``install`` puts the
        detectors ``calibrate(signal.calibration)`` built (in a pool) in place.
        Its next ``update`` calibrates inline if nobody did: the detector never
        misses a value, and the alerts are those of inline mode.
        """
        self.deferred = deferred

    def pending_calibration(self) -> CalibrationRequest | None:
        """The request of a full reference not calibrated yet, or None.

        Deferred (``defer``), or restored from a checkpoint taken while it was:
        the reference is in the checkpoint, so the request is built again
        from it (same values, same seed: the same detectors).
        """
        if self.detector is not None or len(self.reference) < self.reference_size:
            return None
        if self.calibration is None:
            self.calibration = self._request()
        return self.calibration

    def install(self, result: Calibrated) -> bool:
        """Put calibrated detectors in place: the rest of the calibration. False if stale.

        Stale: the signal has no pending reference any more, or another one
        than the result was computed on (``token``); nothing changes then.
        """
        request = self.pending_calibration()
        if request is None or request.token != result.token:
            return False
        # ref_scale was set with the request (``_calibrate``; a checkpoint keeps it).
        self.detector = result.detector
        self.slow = result.slow
        self.calibration = None
        self.reference = []
        if self.status == "warming_up":
            self.status = "ok"
        return True

    def _unsettled(self, n: int) -> int:
        """How many of the ``n`` reference values to leave out of its spread (``smooth``).

        An average's first values are means of a few (a running mean until
        the EWMA's weight is heavier): their spread would widen the tolerance
        (from 0.07 to 0.09 on the noisiest simulated camera, enough to miss a
        0.1 drop). Those of the reference that came before ``smooth`` values,
        at most a quarter of it.
        """
        if self.smooth <= 0:
            return 0
        first = self.smoothed_n - n + 1  # the average's count at the reference's first value
        return int(min(max(0.0, self.smooth - first), n // 4))

    def _detection(self, index: int, fired: Detector | None = None,
                   rereference: bool = True) -> Detection:
        assert self.detector is not None
        det = fired or self.detector
        offset = min(det.change_offset, len(self.indices) - 1)
        change_index = self.indices[-1 - offset] if offset >= 0 else index
        since = list(self.recent)[-min(offset + 1, len(self.recent)) :]
        found = Detection(
            signal=self.name,
            detector=det.name if det is self.detector else FIXED_DETECTOR,
            statistic=float(det.statistic),
            threshold=float(det.threshold),
            # A tracking baseline's level just before the change, else the reference mean.
            expected=float(getattr(det, "mean", self.ref_mean)),
            observed=float(np.mean(since)),
            detected_index=index,
            change_index=int(change_index),
            reference_scale=self.ref_scale,
        )
        if rereference:
            self._rereference_after_detection()
        return found

    def _rereference_after_detection(self) -> None:
        # Re-reference on the new regime: without it a persistent change would
        # fire again every few frames (an alert storm for one change).
        self.status = "drift"
        self.detector = None
        self.slow = None
        self.reference = []
        self.skip = self.cooldown

    # -- reference management ------------------------------------------------------

    def rereference(self) -> None:
        """Build a fresh reference from the next ``reference_size`` values and recalibrate.

        What a detection does to the signal (drop the detector, collect a new
        reference), on demand: no alert, and no cooldown skip -- the operator
        says the stream already is in the regime to compare against (e.g.
        after an acknowledged change). The status goes back to
        ``warming_up`` (not ``drift``): a re-referenced signal has no
        reference until it has seen ``reference_size`` new values.
        """
        self.status = "warming_up"
        self.detector = None
        self.slow = None
        self.pending = None
        self.calibration = None
        self.reference = []
        self.skip = 0
        self.ref_mean = float("nan")
        self.ref_scale = float("nan")

    def adopt_smoothing(self, smooth: float) -> None:
        """Watch the EWMA of half-life ``smooth`` (0: raw values) from the next value.

        Nothing when the signal already does; otherwise its detector was
        calibrated on other values: it re-references (``rereference``) on the
        new ones. For a checkpoint written before the catalogue changed the
        signal's smoothing.
        """
        if float(smooth) == self.smooth:
            return
        self.smooth = float(smooth)
        self.smoothed, self.smoothed_n = float("nan"), 0
        self.rereference()

    def reference_state(self) -> dict[str, Any] | None:
        """The calibrated part of the signal (for a reference bundle), or None.

        Only what detection depends on: the detector (threshold, running
        statistic, tracking baseline) and the reference's location and
        scale. Not the per-stream history (recent values, stream indices,
        last alert): a monitor started from a bundle has no past events.
        """
        if self.detector is None:
            return None
        return SignalReferenceState(
            detector_kind=self.detector_kind,
            ert=self.ert,
            tolerance=self.tolerance,
            track=self.track,
            detector=self.detector.state_model(),
            ref_mean=self.ref_mean,
            ref_scale=self.ref_scale,
            smooth=self.smooth,
        ).model_dump(mode="json")

    def load_reference(self, state: Mapping[str, Any], *, adopt_ert: bool = False) -> None:
        """Start calibrated from ``reference_state()`` output; the next value is watched.

        ``adopt_ert``: take the bundle's ERT (the monitor's budget is set per
        week, not in events). Raises ``ValueError`` when the state was calibrated for other
        parameters (detector kind, false-alarm budget, tolerance, tracking, smoothing):
        its threshold would silently hold another false-alarm rate.
        ``StateVersionError`` (a ``ValueError``) when it is not a signal reference.
        """
        ref = SignalReferenceState.load(state)
        if adopt_ert:
            # A budget set per week: the bundle's ERT came from its own stream's
            # rate, the one this stream's will be measured to (same camera).
            self.ert = ref.ert
        theirs = (ref.detector_kind, ref.ert, ref.tolerance, ref.track, ref.smooth)
        ours = (self.detector_kind, self.ert, self.tolerance, self.track, self.smooth)
        if theirs != ours:
            raise ValueError(
                f"{self.name}: calibrated for (detector, ert, tolerance, track, smooth) = "
                f"{theirs}, this monitor runs {ours}"
            )
        self.detector = detector_from_model(ref.detector)
        self.pending = None
        self.calibration = None
        self.ref_mean, self.ref_scale = ref.ref_mean, ref.ref_scale
        self.reference = []
        self.skip = 0
        self.status = "ok"

    def recent_mean(self, n: int = 16) -> float | None:
        """Mean of the last ``n`` values (None before any value)."""
        if not self.recent:
            return None
        tail = list(self.recent)[-n:]
        return float(np.mean(tail))

    def zscore(self, n: int = 16) -> float | None:
        """How far the recent values sit from the reference, in reference scales."""
        m = self.recent_mean(n)
        if m is None or not np.isfinite(self.ref_mean):
            return None
        scale = self.ref_scale if self.ref_scale > 0 else 1e-12
        return (m - self.ref_mean) / scale

    # -- checkpointing ---------------------------------------------------------------

    def _to_state(self) -> ScalarSignalState:
        return ScalarSignalState(
            name=self.name,
            detector_kind=self.detector_kind,
            ert=self.ert,
            reference_size=self.reference_size,
            cooldown=self.cooldown,
            seed=self.seed,
            tolerance=self.tolerance,
            track=self.track,
            status=self.status,
            detector=None if self.detector is None else self.detector.state_model(),
            reference=self.reference,
            ref_mean=self.ref_mean,
            ref_scale=self.ref_scale,
            skip=self.skip,
            updates=self.updates,
            last_alert_id=self.last_alert_id,
            recent=list(self.recent),
            indices=list(self.indices),
            persist=self.persist,
            slow=None if self.slow is None else self.slow.state_model(),
            pending=None if self.pending is None else self.pending.model_copy(deep=True),
            transients=self.transients,
            fast=self.fast,
            twin_k=self.twin_k,
            smooth=self.smooth,
            smoothed=self.smoothed,
            smoothed_n=self.smoothed_n,
        )

    @classmethod
    def _from_state(cls, state: ScalarSignalState) -> Self:
        s = cls(
            state.name,
            state.detector_kind,
            ert=state.ert,
            reference_size=state.reference_size,
            cooldown=state.cooldown,
            seed=state.seed,
            tolerance=state.tolerance,
            track=state.track,
            persist=state.persist,
            fast=state.fast,
            twin_k=state.twin_k,
            smooth=state.smooth,
        )
        s.smoothed, s.smoothed_n = state.smoothed, state.smoothed_n
        s.pending = None if state.pending is None else state.pending.model_copy(deep=True)
        s.transients = state.transients
        slow = None if state.slow is None else detector_from_model(state.slow)
        s.slow = slow if isinstance(slow, Cusum) else None
        s.status = state.status
        s.detector = None if state.detector is None else detector_from_model(state.detector)
        s.reference = list(state.reference)
        s.ref_mean, s.ref_scale = state.ref_mean, state.ref_scale
        s.skip = state.skip
        s.updates = state.updates
        s.last_alert_id = state.last_alert_id
        s.recent.extend(state.recent)
        s.indices.extend(state.indices)
        return s
