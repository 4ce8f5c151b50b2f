"""The per-stream monitor: events in, explained alerts out. No Kafka here.

One ``StreamMonitor`` watches one stream (camera × model version). The same
object runs inside the faust worker, inside ``driftline replay`` and inside
the benchmarks, so what is measured offline is what runs in production.

Signals and the detector on each (why: see README "What driftline watches"):

===========================  ==============  ==========================================
signal                       detector        from
===========================  ==============  ==========================================
``embedding.distance``       CUSUM           cosine distance to the reference mean
``embedding.residual``       CUSUM           energy outside the reference PCA basis
``quality.<metric>``         CUSUM           brightness, contrast, sharpness, saturation,
                                             colourfulness, noise, warmth, tint
``quality.resolution``       CUSUM           log2 of the decoded frame's pixel count
``quality.undecodable``      ADWIN           1 per frame the embedder could not use, else 0
``quality.compression``      CUSUM           ln of the encoded frame's size (KiB)
``output.confidence``        CUSUM           the deployed model's top-class confidence
``output.entropy``           CUSUM           entropy of the deployed model's ``scores``
``output.class_mix``         chi-squared     the predicted-class mix in a window of 100
``output.new_classes``       CUSUM           share of recent predictions of just-seen classes
``output.boxes``             CUSUM           boxes per frame (detection models)
``performance.error``        ADWIN           1 if a label disagrees with the prediction
===========================  ==============  ==========================================

CUSUM and Page-Hinkley thresholds are calibrated on the stream's own reference
with autocorrelation taken into account (``processors.calibration``); the
stream's false-alarm budget ``ert`` is split evenly across the calibrated
signals, so all signals together keep about one false alarm per ``ert`` events.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.class_novelty import ClassNovelty
from processors.embedding_learners import (
    JOIN_WINDOW,
    EmbeddingLearners,
    RetrainAdvice,
)
from processors.embedding_reference import EmbeddingReference
from processors.learners.outlier_scorer import OutlierScorer
from processors.learners.retrain_head import RetrainHead
from processors.signal_tracker import Detection, ScalarSignal
from schemas.events import (
    Alert,
    Embedding,
    FrameError,
    Label,
    Prediction,
    SignalState,
    StreamState,
)

MonitorEvent = Embedding | FrameError | Prediction | Label

STATE_VERSION = 1

QUALITY_SIGNALS = (
    "brightness", "contrast", "sharpness", "saturation", "colourfulness", "noise", "warmth", "tint",
)
EMBEDDING_SIGNALS = ("distance", "residual")
# Embeddings come from two different spaces: driftline's embedder (Embedding
# events) and the deployed model's own penultimate layer (Prediction.embedding
# from edge devices). Each gets its own reference and signals; mixing them
# would make the first vector of either fix the dimension for both.
EMBEDDING_SOURCES = ("embedding", "edge")
EVENT_ID_HISTORY = 1024
# Class names get small integer ids for the class-mix test. A stream whose
# "classes" are unbounded strings (ids, free text) must not grow the table
# without bound: past this many names, new ones share the "other" bin.
MAX_CLASS_IDS = 4096
OTHER_CLASS = -1

_DETECTOR_OF = {
    **{f"{src}.{s}": "cusum" for src in EMBEDDING_SOURCES for s in EMBEDDING_SIGNALS},
    # The river outlier scorer's clipped score (processors.embedding_learners).
    **{f"{src}.outlier": "cusum_up" for src in EMBEDDING_SOURCES},
    **{f"quality.{s}": "cusum" for s in QUALITY_SIGNALS},
    "quality.resolution": "cusum",
    # Page-Hinkley (river) compares with the mean since its reset; a camera's
    # lighting cycle moves a classifier's confidence by as much as a worse
    # model does, and PH fired 13 times in 76,000 clean frames where a CUSUM
    # with the tracking baseline fired once, catching the drop faster
    # (bench/README.md). PH stays available as a detector kind.
    "output.confidence": "cusum",
    "output.entropy": "cusum",
    "output.class_mix": "chi2_mix",
    "output.boxes": "cusum",
    "performance.error": "adwin",
    # 1 for a frame the embedder could not use, 0 for every embedded frame.
    # (New signals go last: each signal's calibration seed is its position here.)
    "quality.undecodable": "adwin",
    # ln of the encoded frame's size: a camera's bitrate or JPEG quality cut
    # (q10 halves the bytes of the same scene) before the pixels look "wrong".
    "quality.compression": "cusum",
    # Share of recent predictions naming classes the stream only just started
    # seeing (processors.class_novelty): class-mix changes on streams whose mix
    # flickers too much for the chi-squared test.
    "output.new_classes": "tolerance_up",
}
# Smallest change worth an alert, (relative to the reference mean, absolute), for
# CUSUM signals. A camera's natural variation over hours (lighting cycles, the
# view wandering, people passing) exceeds what a short reference shows; these
# floors keep that variation from alerting while a real change (a 40% darkening,
# blur, a moved camera) clears them several times over. Measured on simulated
# cameras over real photos and on vtest.avi: see bench/README.md.
TOLERANCE: dict[str, tuple[float, float]] = {
    **{f"{src}.{s}": (1.5, 0.0) for src in EMBEDDING_SOURCES for s in EMBEDDING_SIGNALS},
    "quality.brightness": (0.25, 3.0),
    "quality.contrast": (0.25, 2.0),
    "quality.sharpness": (0.0, 1.2),
    "quality.saturation": (0.25, 0.05),
    "quality.colourfulness": (0.25, 3.0),
    "quality.noise": (1.0, 0.6),
    # ln(R/B) and ln(G/sqrt(RB)): a colour cast R x1.3 / B x0.7 moves warmth by 0.62.
    "quality.warmth": (0.0, 0.15),
    "quality.tint": (0.0, 0.12),
    # log2(pixels): any resolution change (x0.5 per side = -2) clears it many times.
    "quality.resolution": (0.0, 0.1),
    # ln(KiB): ±30% around the tracking baseline is the scene's own detail changing.
    "quality.compression": (0.0, 0.3),
    # Clean cameras never exceeded 0.05; half the frames of unseen classes: 0.26 in 50.
    "output.new_classes": (0.0, 0.15),
    "output.confidence": (0.0, 0.15),
    "output.entropy": (0.0, 0.4),
    "output.boxes": (0.25, 1.0),
}
for _src in EMBEDDING_SOURCES:
    TOLERANCE[f"{_src}.outlier"] = (0.5, 0.0)
# Not a scalar signal: the retrain head's McNemar test (one alert per episode).
RETRAIN_SIGNAL = "performance.retrain_gain"
# Not a signal either: the registry's notice that a stream reports a new model version.
VERSION_SIGNAL = "model.version"
# Signals whose thresholds come out of the false-alarm budget (ADWIN's does not).
_CALIBRATED = [name for name, kind in _DETECTOR_OF.items() if kind != "adwin"]


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def scores_entropy(scores: dict[str, float]) -> float:
    """Entropy (nats) of a prediction's class ``scores``, completed where truncated.

    Models often report only their top few classes. The mass they leave out
    (``1 - sum``) is spread evenly over as many unlisted classes as needed for
    none to exceed the smallest listed score: the largest entropy consistent
    with what was reported. (Counting the left-out mass as one class instead
    made a model that grew *less* certain look *more* certain: flatter scores
    leave more mass out of the top five, and one big lump has low entropy.)

    >>> round(scores_entropy({"a": 0.5, "b": 0.5}), 4)
    0.6931
    >>> round(scores_entropy({"a": 0.6, "b": 0.2}), 4)   # 0.2 left out: one more class of 0.2
    0.9503
    >>> scores_entropy({"a": 0.3, "b": 0.1}) > scores_entropy({"a": 0.6, "b": 0.2})
    True
    """
    # Plain Python: a handful of values, called once per prediction (numpy's
    # per-call overhead was most of the monitor's per-prediction cost here).
    p = [min(max(float(v), 0.0), 1.0) for v in scores.values()]
    total = sum(p)
    if total > 1.0:
        p = [v / total for v in p]
    p = [v for v in p if v > 0.0]
    h = -sum(v * math.log(v) for v in p)
    rest = max(0.0, 1.0 - sum(p))
    if rest > 1e-12:
        smallest = min(p) if p else rest
        m = max(1, math.ceil(rest / max(smallest, 1e-12) - 1e-9))
        h += rest * math.log(m / rest)
    return h


def alert_id(stream_id: str, model_version: str, signal: str, detector: str, index: int) -> str:
    """Deterministic alert id: a replay after a crash re-creates the same id.

    >>> alert_id("cam-1", "v1", "quality.brightness", "cusum", 3012)[:12]
    '2dddd42592be'
    """
    key = f"{stream_id}\x1f{model_version}\x1f{signal}\x1f{detector}\x1f{index}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class StreamMonitor:
    """Watches one stream; ``observe(event)`` returns the alerts it fires.

    Parameters
    ----------
    stream_id, model_version : str
        The stream this monitor owns; events of other streams are refused.
    settings : MonitorSettings
        ``ert`` (events between false alarms, all signals together),
        ``reference_size``, ``pca_components``, ``cooldown``,
        ``label_join_window``.
    """

    def __init__(
        self, stream_id: str, model_version: str, settings: MonitorSettings | None = None
    ) -> None:
        self.stream_id = stream_id
        self.model_version = model_version
        self.settings = settings or MonitorSettings()
        self.events_seen = 0
        self.labels_unmatched = 0
        self.references: dict[str, EmbeddingReference] = {}
        self._ref_vectors: dict[str, list[list[float]]] = {src: [] for src in EMBEDDING_SOURCES}
        # (event id, frame index, ts) of recent events, to say where a change began.
        self._recent_events: deque[tuple[str, int | None, str]] = deque(maxlen=EVENT_ID_HISTORY)
        self._predictions: OrderedDict[str, str] = OrderedDict()
        self._class_ids: dict[str, int] = {}
        self._novelty = ClassNovelty(max_classes=MAX_CLASS_IDS,
                                     warmup=self.settings.class_mix_reference_size)
        self.learners: dict[str, EmbeddingLearners] = {}
        self.last_alert_ids: dict[str, str] = {}
        # prediction event id -> (learner source, join key) of its frame, for the retrain head.
        self._pred_frames: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # Set by a label that makes the retrain head's advice new; turned into
        # an alert (and cleared) by the same ``observe`` call.
        self._advice: RetrainAdvice | None = None
        ert_each = self.settings.ert * len(_CALIBRATED)
        halflife = self.settings.baseline_halflife
        track = 1.0 - 0.5 ** (1.0 / halflife) if halflife else 0.0
        self.signals: dict[str, ScalarSignal] = {
            name: ScalarSignal(
                name,
                kind,
                ert=ert_each,
                reference_size=(self.settings.class_mix_reference_size
                                if name == "output.class_mix" else self.settings.reference_size),
                cooldown=self.settings.cooldown,
                seed=i,
                tolerance=TOLERANCE.get(name),
                track=track if name in TOLERANCE else 0.0,
            )
            for i, (name, kind) in enumerate(_DETECTOR_OF.items())
        }

    # -- observing -------------------------------------------------------------------

    def observe(self, event: MonitorEvent) -> list[Alert]:
        """Update every signal the event carries; return the alerts it fired.

        Raises
        ------
        InvalidEvent
            The event belongs to another stream, or its embedding's length
            differs from the stream's reference (dead-letter it and go on).
        """
        if event.stream_id != self.stream_id or event.model_version != self.model_version:
            raise InvalidEvent(
                f"event of {event.stream_id}/{event.model_version} given to the monitor of "
                f"{self.stream_id}/{self.model_version}",
                reason="wrong_stream",
            )
        values = self._signal_values(event)
        index = self.events_seen
        self.events_seen += 1
        frame_index = getattr(event, "frame_index", None)
        self._recent_events.append((event.event_id, frame_index, event.ts.isoformat()))
        alerts = []
        for name, value in values.items():
            detection = self.signals[name].update(value, index)
            if detection is not None:
                alerts.append(self._alert(detection, event))
        advice = self._advice
        if advice is not None:
            self._advice = None
            alerts.append(self._alert(self._retrain_detection(advice, index), event))
        return alerts

    def _retrain_detection(self, a: RetrainAdvice, index: int) -> Detection:
        worst = ", ".join(f"{c} {acc:.0%} of {n}" for c, (acc, n) in a.worst_classes.items())
        return Detection(
            signal=RETRAIN_SIGNAL,
            detector="retrain_head",
            statistic=a.gain,
            threshold=0.0,
            expected=a.deployed_accuracy,
            observed=a.head_accuracy,
            detected_index=index,
            change_index=index,
            reference_scale=float("nan"),
            p_value=a.p_value,
            note=(f"an incremental head trained on this stream's labels is right on "
                  f"{a.head_accuracy:.0%} of the last {a.n_window} labelled frames, the deployed "
                  f"model on {a.deployed_accuracy:.0%} (McNemar p = {a.p_value:.2g}): retraining "
                  f"on recent frames would help; deployed accuracy by class: {worst}"),
        )

    def _signal_values(self, event: MonitorEvent) -> dict[str, float]:
        values: dict[str, float] = {}
        if isinstance(event, Embedding):
            values.update(self._embedding_values("embedding", event.vector, event.frame_id,
                                                 event.event_id))
            for key in QUALITY_SIGNALS:
                if key in event.quality:
                    values[f"quality.{key}"] = float(event.quality[key])
            values["quality.undecodable"] = 0.0
            width, height = event.quality.get("width"), event.quality.get("height")
            if width and height and width > 0 and height > 0:
                values["quality.resolution"] = math.log2(width * height)
            kib = event.quality.get("encoded_kb")
            if kib is not None and kib > 0:
                values["quality.compression"] = math.log(kib)
        elif isinstance(event, FrameError):
            values["quality.undecodable"] = 1.0
        elif isinstance(event, Prediction):
            if event.embedding is not None:
                key = event.frame_id or event.event_id
                values.update(self._embedding_values("edge", event.embedding, key, event.event_id))
            values["output.confidence"] = float(event.confidence)
            if event.scores:
                values["output.entropy"] = scores_entropy(event.scores)
            values["output.class_mix"] = float(self._class_id(event.top_class))
            novelty = self._novelty.update(event.top_class)
            if novelty is not None:
                values["output.new_classes"] = novelty
            if event.boxes is not None:
                values["output.boxes"] = float(len(event.boxes))
            self._predictions[event.event_id] = event.top_class
            if len(self._predictions) > self.settings.label_join_window:
                self._predictions.popitem(last=False)
            source = "edge" if event.embedding is not None else "embedding"
            if event.frame_id is not None or source == "edge":
                key = event.frame_id or event.event_id
                self._pred_frames[event.event_id] = (source, key)
                if len(self._pred_frames) > JOIN_WINDOW:
                    self._pred_frames.popitem(last=False)
        elif isinstance(event, Label):
            predicted = self._predictions.pop(event.target_event_id, None)
            if predicted is None:
                self.labels_unmatched += 1
            else:
                values["performance.error"] = float(predicted != event.true_class)
                joined = self._pred_frames.pop(event.target_event_id, None)
                learners = self.learners.get(joined[0]) if joined else None
                if joined is not None and learners is not None:
                    self._advice = learners.learn(joined[1], event.true_class, predicted)
        return values

    def _class_id(self, name: str) -> int:
        cid = self._class_ids.get(name)
        if cid is None:
            if len(self._class_ids) >= MAX_CLASS_IDS:
                return OTHER_CLASS
            cid = self._class_ids[name] = len(self._class_ids)
        return cid

    def _embedding_values(
        self, source: str, vector: list[float], key: str, event_id: str
    ) -> dict[str, float]:
        reference = self.references.get(source)
        buffered = self._ref_vectors[source]
        # A known dimension wins over the first vector seen: otherwise one
        # malformed vector arriving first would poison the stream's reference
        # and every good vector after it would be dead-lettered.
        known = self.settings.embedding_dim if source == "embedding" else None
        if reference is not None:
            dim = reference.dim
        elif known is not None:
            dim = known
        else:
            dim = len(buffered[0]) if buffered else len(vector)
        if len(vector) != dim:
            raise InvalidEvent(
                f"{source} vector has {len(vector)} dimensions, this stream's {source} "
                f"reference has {dim}",
                reason="embedding_dimension",
            )
        if reference is None:
            # The embedding reference is fitted once, on the first N embeddings;
            # its scalar signals then build their own references after it.
            buffered.append(vector)
            if len(buffered) >= self.settings.reference_size:
                fitted = self.references[source] = EmbeddingReference.fit(
                    np.asarray(buffered), self.settings.pca_components
                )
                if source == "embedding" or self.settings.edge_learners:
                    self.learners[source] = EmbeddingLearners.fit(fitted, np.asarray(buffered))
                buffered.clear()
            return {}
        scores, projection = reference.scores_and_projection(vector)
        out = {f"{source}.{k}": v for k, v in scores.items()}
        learners = self.learners.get(source)
        if learners is not None:
            out[f"{source}.outlier"] = learners.observe(key, event_id, projection)
        return out

    def version_notice(self, previous: list[str], event: MonitorEvent) -> Alert:
        """An info alert: this stream now reports a model version it had not before.

        A new version gets a fresh monitor that warms up on its own events (its
        outputs are not comparable with the old version's reference); without
        this notice a deployment would look like a quiet stream for a while.
        """
        aid = alert_id(self.stream_id, self.model_version, VERSION_SIGNAL, "registry", 0)
        self.last_alert_ids[VERSION_SIGNAL] = aid
        frame = getattr(event, "frame_index", None)
        return Alert(
            alert_id=aid,
            stream_id=self.stream_id,
            model_version=self.model_version,
            signal=VERSION_SIGNAL,
            detector="registry",
            severity="info",
            message=(
                f"{self.stream_id} now reports model version {self.model_version!r} "
                f"(before: {', '.join(map(repr, previous))})"
                + (f" from frame {frame}" if frame is not None else "")
                + f"; its monitor warms up on the next {self.settings.reference_size} events "
                "before it can alert"
            ),
            statistic=0.0,
            threshold=0.0,
            detected_index=0,
            change_index=0,
            detected_event_id=event.event_id,
            change_event_id=event.event_id,
            detected_frame_index=frame,
            change_frame_index=frame,
            change_ts=event.ts,
            ert=self.settings.ert,
        )

    # -- reference management ---------------------------------------------------------

    @staticmethod
    def known_signals() -> list[str]:
        """Every signal name a monitor of this build watches."""
        return list(_DETECTOR_OF)

    def rereference(self, signals: list[str] | None = None) -> list[str]:
        """Drop the named signals' references (all if None); return those re-referenced.

        Each builds a fresh reference from its next ``reference_size`` values
        and recalibrates (``ScalarSignal.rereference``: no alert, no cooldown).
        Naming any ``embedding.*`` (or ``edge.*``) signal also re-fits that
        source's embedding reference (PCA basis) on the next
        ``reference_size`` vectors; since both of its scores are measured
        against that basis, both of its signals re-reference together and
        are both returned (in the monitor's signal order).

        Raises
        ------
        ValueError
            A name is not a signal of this monitor (nothing is changed).
        """
        if signals is None:
            names = set(self.signals)
        else:
            unknown = [s for s in signals if s not in self.signals]
            if unknown:
                raise ValueError(
                    f"unknown signal(s) {', '.join(map(repr, unknown))}; known signals: "
                    + ", ".join(self.signals)
                )
            names = set(signals)
        for src in EMBEDDING_SOURCES:
            if any(n.startswith(f"{src}.") for n in names):
                # Keeping the old basis would leave the new regime's frames
                # scored as far from it: the re-referenced distance/residual
                # would calibrate on inflated scores and miss the next change.
                self.references.pop(src, None)
                self._ref_vectors[src].clear()
                names.update(n for n in self.signals if n.startswith(f"{src}."))
        done = [n for n in self.signals if n in names]
        for n in done:
            self.signals[n].rereference()
        return done

    def reference_state(self) -> dict[str, Any]:
        """The calibrated part of the monitor: embedding references and calibrated signals.

        This is what a reference bundle carries (``processors.reference``);
        signals still warming up are left out and warm up on live data.
        """
        return {
            "references": {src: ref.state() for src, ref in self.references.items()},
            # The outlier scorer belongs to the embedding reference (it scores
            # projections on that basis); the retrain head learns live labels.
            "outlier_scorers": {src: ln.scorer.state() for src, ln in self.learners.items()},
            "signals": {
                name: st for name, sig in self.signals.items()
                if (st := sig.reference_state()) is not None
            },
        }

    @classmethod
    def from_reference(
        cls,
        stream_id: str,
        model_version: str,
        reference: dict[str, Any],
        settings: MonitorSettings | None = None,
    ) -> StreamMonitor:
        """A new monitor that starts calibrated from ``reference_state()`` output.

        The first event is already watched (no warm-up) by the stored
        detectors, which continue exactly as in the monitor they were taken
        from. Cooldown and reference size (for later re-references) are this
        monitor's ``settings``.

        Raises
        ------
        ValueError
            The reference names an unknown signal, was calibrated for other
            parameters, or its embedding dimension differs from
            ``settings.embedding_dim``.
        """
        m = cls(stream_id, model_version, settings)
        for src, ref_state in reference.get("references", {}).items():
            if src not in EMBEDDING_SOURCES:
                raise ValueError(f"unknown embedding source {src!r}; known: {EMBEDDING_SOURCES}")
            ref = EmbeddingReference.from_state(ref_state)
            known = m.settings.embedding_dim if src == "embedding" else None
            if known is not None and ref.dim != known:
                raise ValueError(
                    f"{src} reference has {ref.dim} dimensions, the embedder gives {known}"
                )
            m.references[src] = ref
            scorer_state = reference.get("outlier_scorers", {}).get(src)
            if scorer_state is not None:
                m.learners[src] = EmbeddingLearners(
                    OutlierScorer.from_state(scorer_state), RetrainHead(k=ref.basis.shape[0])
                )
        for name, sig_state in reference.get("signals", {}).items():
            if name not in m.signals:
                raise ValueError(
                    f"unknown signal {name!r}; known signals: " + ", ".join(m.signals)
                )
            if name.split(".", 1)[0] in EMBEDDING_SOURCES and name.split(".", 1)[0] not in (
                m.references
            ):
                raise ValueError(f"{name} is calibrated but its embedding reference is missing")
            m.signals[name].load_reference(sig_state)
        return m

    # -- alerts ----------------------------------------------------------------------

    def _event_at(self, index: int) -> tuple[str, int | None, str] | None:
        back = self.events_seen - 1 - index
        if 0 <= back < len(self._recent_events):
            return self._recent_events[-1 - back]
        return None

    def _event_id_at(self, index: int) -> str | None:
        at = self._event_at(index)
        return at[0] if at else None

    def _alert(self, d: Detection, event: MonitorEvent) -> Alert:
        aid = alert_id(self.stream_id, self.model_version, d.signal, d.detector, d.detected_index)
        if d.signal in self.signals:
            self.signals[d.signal].last_alert_id = aid
        else:
            self.last_alert_ids[d.signal] = aid
        movers = {
            name: round(z, 2)
            for name, sig in self.signals.items()
            if name != d.signal and (z := sig.zscore()) is not None and abs(z) >= 2.0
        }
        top = dict(sorted(movers.items(), key=lambda kv: -abs(kv[1]))[:5])
        scale = d.reference_scale if d.reference_scale > 0 else float("nan")
        shift = (d.observed - d.expected) / scale if np.isfinite(scale) else float("nan")
        direction = "rose" if d.observed > d.expected else "fell"
        change = self._event_at(d.change_index)
        change_event = change[0] if change else None
        before = self._event_id_at(d.change_index - 1)
        after = [e for i in (d.change_index, d.detected_index) if (e := self._event_id_at(i))]
        det_frame = getattr(event, "frame_index", None)
        severity = "critical" if np.isfinite(shift) and abs(shift) >= 6 else "warning"
        message = f"{d.signal}: {d.note}" if d.note else (
            f"{d.signal} {direction} from {d.expected:.4g} (reference) to {d.observed:.4g}"
            + (f" ({shift:+.1f} reference scales)" if np.isfinite(shift) else "")
            + (f" since frame {change[1]}" if change and change[1] is not None else "")
            + f" (event #{d.change_index}); detected at event #{d.detected_index}"
            + (f" (frame {det_frame})" if det_frame is not None else "")
            + (f" by {d.detector} ({d.statistic:.3g} > {d.threshold:.3g}; stream budget:"
               f" 1 false alarm per {self.settings.ert:g} events)"
               if math.isfinite(d.threshold) else
               f" by {d.detector} (its window split where the two parts' means differ"
               " significantly)")
        )
        return Alert(
            alert_id=aid,
            stream_id=self.stream_id,
            model_version=self.model_version,
            signal=d.signal,
            detector=d.detector,
            severity=severity,
            message=message,
            statistic=d.statistic,
            threshold=_finite_or_none(d.threshold),
            p_value=d.p_value,
            expected=d.expected,
            observed=d.observed,
            detected_index=d.detected_index,
            change_index=d.change_index,
            detected_event_id=event.event_id,
            change_event_id=change_event,
            detected_frame_index=det_frame,
            change_frame_index=change[1] if change else None,
            change_ts=change[2] if change else None,
            ert=self.settings.ert,
            top_movers=top,
            examples_before=[before] if before else [],
            examples_after=after + self._outlier_examples(d.signal),
        )

    def _outlier_examples(self, signal: str) -> list[str]:
        """The latest single odd frames, for outlier alerts (what to look at first)."""
        source = signal.split(".", 1)[0]
        learners = self.learners.get(source)
        if learners is None or not signal.endswith(".outlier"):
            return []
        return list(learners.outlier_examples)[-3:]

    # -- state -----------------------------------------------------------------------

    def snapshot(self) -> StreamState:
        """The stream's state for the state topic and Redis, with the checkpoint."""
        signals = {}
        for name, sig in self.signals.items():
            det = sig.detector
            signals[name] = SignalState(
                signal=name,
                status=sig.status,
                detector=sig.detector_kind,
                statistic=_finite_or_none(det.statistic) if det is not None else None,
                threshold=_finite_or_none(det.threshold) if det is not None else None,
                expected=sig.ref_mean if np.isfinite(sig.ref_mean) else None,
                observed=sig.recent_mean(),
                last_alert_id=sig.last_alert_id,
            )
        learners = self.learners.get("embedding") or self.learners.get("edge")
        if learners is not None:
            head = learners.head
            warm = head.n_window < head.min_labels
            signals[RETRAIN_SIGNAL] = SignalState(
                signal=RETRAIN_SIGNAL,
                status="warming_up" if warm else ("drift" if head.retrain_advised else "ok"),
                detector="retrain_head",
                statistic=0.0 if warm else float(head.gain),
                threshold=0.0,
                expected=None if warm else float(head.deployed_accuracy),
                observed=None if warm else float(head.head_accuracy),
                last_alert_id=self.last_alert_ids.get(RETRAIN_SIGNAL),
            )
        return StreamState(
            stream_id=self.stream_id,
            model_version=self.model_version,
            events_seen=self.events_seen,
            signals=signals,
            monitor=self.state(),
        )

    def state(self) -> dict[str, Any]:
        """Versioned JSON-safe checkpoint; ``from_state`` continues exactly."""
        return {
            "version": STATE_VERSION,
            "stream_id": self.stream_id,
            "model_version": self.model_version,
            "settings": self.settings.model_dump(),
            "events_seen": self.events_seen,
            "labels_unmatched": self.labels_unmatched,
            "references": {src: ref.state() for src, ref in self.references.items()},
            # Not the warm-up buffer (up to reference_size × dim floats, megabytes):
            # a worker restarted during an embedding warm-up starts that warm-up
            # again; every other part of the state is restored exactly.
            "warming": {src: len(vs) for src, vs in self._ref_vectors.items()},
            "recent_events": [list(e) for e in self._recent_events],
            "predictions": list(self._predictions.items()),
            "class_ids": dict(self._class_ids),
            "novelty": self._novelty.state(),
            "learners": {src: ln.state() for src, ln in self.learners.items()},
            "pred_frames": [[k, list(v)] for k, v in self._pred_frames.items()],
            "last_alert_ids": dict(self.last_alert_ids),
            "signals": {name: sig.state() for name, sig in self.signals.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamMonitor:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"monitor state version {state.get('version')!r} not supported")
        m = cls(state["stream_id"], state["model_version"], MonitorSettings(**state["settings"]))
        m.events_seen = int(state["events_seen"])
        m.labels_unmatched = int(state["labels_unmatched"])
        m.references = {
            src: EmbeddingReference.from_state(ref) for src, ref in state["references"].items()
        }
        m._recent_events.extend(tuple(e) for e in state["recent_events"])
        m._predictions = OrderedDict((k, v) for k, v in state["predictions"])
        m._class_ids = {str(k): int(v) for k, v in state.get("class_ids", {}).items()}
        if "novelty" in state:
            m._novelty = ClassNovelty.from_state(state["novelty"])
        m.learners = {
            src: EmbeddingLearners.from_state(ln) for src, ln in state.get("learners", {}).items()
        }
        m._pred_frames = OrderedDict((k, (v[0], v[1])) for k, v in state.get("pred_frames", []))
        m.last_alert_ids = dict(state.get("last_alert_ids", {}))
        m.signals = {name: ScalarSignal.from_state(s) for name, s in state["signals"].items()}
        return m


class MonitorRegistry:
    """Monitors by (stream, model version), created on first sight.

    The stream app and ``replay`` both route events through this, so one
    process can watch any number of streams; memory per stream is bounded.
    """

    def __init__(self, settings: MonitorSettings | None = None) -> None:
        from processors.reference import load_bundles

        self.settings = settings or MonitorSettings()
        self.monitors: dict[tuple[str, str], StreamMonitor] = {}
        # Reference bundles by (stream, model version): a new monitor of such a
        # stream starts calibrated. Loaded (and checked against these settings)
        # here, at start-up; ConfigError naming the setting if one does not fit.
        self.bundles = load_bundles(self.settings)

    def get(self, stream_id: str, model_version: str) -> StreamMonitor:
        key = (stream_id, model_version)
        mon = self.monitors.get(key)
        if mon is None and key in self.bundles:
            mon = self.monitors[key] = StreamMonitor.from_reference(
                stream_id, model_version, self.bundles[key].reference(), self.settings
            )
        if mon is None:
            mon = self.monitors[key] = StreamMonitor(stream_id, model_version, self.settings)
        return mon

    def restore(self, state: StreamState) -> None:
        """Install a monitor from a snapshot (worker start-up / rebalance)."""
        self.monitors[(state.stream_id, state.model_version)] = StreamMonitor.from_state(
            state.monitor
        )

    def observe(self, event: MonitorEvent) -> tuple[StreamMonitor, list[Alert]]:
        key = (event.stream_id, event.model_version)
        new = key not in self.monitors
        mon = self.get(*key)
        alerts = mon.observe(event)
        if new:
            # A stream's events all share one partition, so every version of
            # it this stream has shown is here: say when a new one appears.
            others = sorted(v for s, v in self.monitors if s == key[0] and v != key[1])
            if others:
                alerts.insert(0, mon.version_notice(others, event))
        return mon, alerts
