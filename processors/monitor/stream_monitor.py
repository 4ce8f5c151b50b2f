"""The per-stream monitor: events in, explained alerts out. No Kafka here.

One ``StreamMonitor`` watches one stream (camera × model version). The same
object runs inside the faust worker, inside ``driftline replay`` and inside
the benchmarks (all through ``processors.router``), so what is measured
offline is what runs in production.

Which signals exist, what detector watches each and with what tolerance is
the catalogue's business (``processors.monitor.catalogue``); the memory some
signals need is ``processors.monitor.features``; the words of an alert are
``processors.monitor.alerts``. This module is the observe loop, the
re-reference (operator commands, reference bundles) and the checkpoint.

Detector thresholds are calibrated on the stream's own reference with
autocorrelation taken into account (``processors.calibration``); the
stream's false-alarm budget ``ert`` is split evenly across the calibrated
signals, so all signals together keep about one false alarm per ``ert``
events.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.class_novelty import ClassNovelty
from processors.embedding_reference import EmbeddingReference
from processors.learners.outlier_scorer import OutlierScorer
from processors.monitor.alerts import (
    EventHistory,
    compose_alert,
    retrain_detection,
    version_notice,
)
from processors.monitor.camera_state import CameraRecord
from processors.monitor.catalogue import (
    CALIBRATED,
    EMBEDDING_SOURCES,
    EXTRACTORS,
    RETRAIN_SIGNAL,
    SIGNALS,
    VERSION_SIGNAL,
    MonitorEvent,
)
from processors.monitor.controls import RESOLVE_MEAN_OF, MonitorControls
from processors.monitor.features import (
    FROZEN_SIGNAL,
    MAX_CLASS_IDS,
    VIGNETTING_SIGNAL,
    ClassIds,
    EmbeddingFeatures,
    LabelJoin,
    TileFeatures,
    dark_corners,
    tile_name,
)
from processors.monitor.label_order import Matched, PendingLabels
from processors.monitor.warmup_checks import SUSPECT_SUFFIX, ReferenceCheck, signal_status
from processors.signal_tracker import Calibrated, CalibrationRequest, Detection, ScalarSignal
from schemas.events import Alert, Embedding, Label, Prediction, SignalState, StreamState

STATE_VERSION: Literal[1] = 1

# Where an event was read: (input, offset); see ``StreamMonitor.applied``.
# An event may carry several (an embedding: where it was read, and the frame
# it was made from): it was applied if any of them was.
Position = tuple[str, int]
Positions = Position | tuple[Position, ...] | None


def each_position(position: Positions) -> tuple[Position, ...]:
    """``position`` as a tuple of positions.

    >>> each_position(("a:0", 3)), each_position((("a:0", 3), ("b:1", 4))), each_position(None)
    ((('a:0', 3),), (('a:0', 3), ('b:1', 4)), ())
    """
    if position is None:
        return ()
    if len(position) == 2 and isinstance(position[0], str):
        return (position,)
    return position


# -- the budget in the operator's unit (issue #11) -------------------------------------
WEEK_S = 7 * 24 * 3600.0
# Stream ERT (events) when the event rate cannot be measured: what the monitor
# used before budgets were set per week.
FALLBACK_ERT = 10_000.0
# A stream faster than this (events/s) has timestamps that are not frame times
# (events stamped when they were built, as tests and synthetic replays do):
# two events per frame at 120 fps is 240/s.
MAX_EVENT_RATE = 250.0


def event_rate(first_ts: float | None, last_ts: float, events: int) -> float | None:
    """Events per second between two timestamps ``events`` events apart, or None.

    None when the rate cannot be trusted: no span, time running backwards, or
    faster than ``MAX_EVENT_RATE``.

    >>> event_rate(0.0, 19.9, 200)   # 200 events at 10/s
    10.0
    >>> event_rate(0.0, 0.01, 200) is None
    True
    """
    if first_ts is None or events < 2 or not last_ts > first_ts:
        return None
    rate = (events - 1) / (last_ts - first_ts)
    return rate if rate <= MAX_EVENT_RATE else None


def stream_ert(settings: MonitorSettings, rate: float | None) -> float:
    """The stream's ERT in events: ``settings.ert``, else the weekly budget at ``rate``.

    >>> stream_ert(MonitorSettings(), 20.0)     # 20 events/s, 1 false alarm a week
    12096000.0
    >>> stream_ert(MonitorSettings(), None), stream_ert(MonitorSettings(ert=500), 20.0)
    (10000.0, 500.0)
    """
    if settings.ert is not None:
        return float(settings.ert)
    if rate is None:
        return FALLBACK_ERT
    return rate * WEEK_S / settings.false_alarms_per_week


class MonitorState(BaseModel):
    """A monitor's checkpoint (``StreamMonitor.state()``), validated on restore.

    Parts owned by other classes (signals, embedding references, learners,
    class novelty) are their own versioned checkpoints, validated by them.
    """

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = STATE_VERSION
    stream_id: str
    model_version: str
    settings: MonitorSettings
    events_seen: int
    labels_unmatched: int
    references: dict[str, dict[str, Any]]
    # Warm-up buffer lengths (see EmbeddingFeatures.state) ...
    warming: dict[str, int]
    # ... and the buffered vectors themselves: a monitor restored during a
    # PCA warm-up must fit the same basis as one that never stopped, or an
    # event would change the stream twice (once before the snapshot, and
    # again, differently, after). Up to reference_size x dim floats, for the
    # first reference_size vectors of a source only.
    warmup_vectors: dict[str, list[list[float]]] = {}
    recent_events: list[tuple[str, int | None, str]]
    predictions: list[tuple[str, str]]
    class_ids: dict[str, int] = {}
    novelty: dict[str, Any] | None = None
    learners: dict[str, dict[str, Any]] = {}
    pred_frames: list[tuple[str, tuple[str, str]]] = []
    last_alert_ids: dict[str, str] = {}
    # Highest position applied per input (see ``StreamMonitor.observe``):
    # opaque to the monitor, e.g. "<topic>:<partition>" -> offset in the worker.
    positions: dict[str, int] = {}
    signals: dict[str, dict[str, Any]]
    # Event-rate measurement (issue #11): first event's ts (epoch s) and the rate.
    first_ts: float | None = None
    event_rate: float | None = None
    tiles: dict[str, Any] | None = None
    # Operator controls and open alerts (``processors.monitor.controls``).
    controls: dict[str, Any] | None = None
    # Labels waiting for their predictions (``PendingLabels.state``).
    pending_labels: dict[str, Any] | None = None
    # The stream's camera health (``processors.monitor.camera_state.CameraState``).
    camera: dict[str, Any] | None = None


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
        self.history = EventHistory()
        self.embeddings = EmbeddingFeatures(self.settings, model_version)
        self.tiles = TileFeatures(self.settings.reference_size,
                                  _track(self.settings) / TILE_TRACK_SLOWER)
        self.class_ids = ClassIds()
        self.novelty = ClassNovelty(max_classes=MAX_CLASS_IDS,
                                    warmup=self.settings.class_mix_reference_size)
        self.join = LabelJoin(self.settings.label_join_window)
        # Labels in arrival order, waiting for their predictions (label_order).
        self.pending_labels = PendingLabels()
        self.last_alert_ids: dict[str, str] = {}
        # Highest position applied per input: ``observe(event, position)``.
        self.positions: dict[str, int] = {}
        self.first_ts: float | None = None
        self.event_rate: float | None = None
        self.controls = MonitorControls()
        # The stream's camera-health record, shared by CameraHealth.link.
        self.camera: CameraRecord | None = None
        ert_each = stream_ert(self.settings, None) * len(CALIBRATED)
        halflife = self.settings.baseline_halflife
        track = 1.0 - 0.5 ** (1.0 / halflife) if halflife else 0.0
        self.signals: dict[str, ScalarSignal] = {
            spec.name: ScalarSignal(
                spec.name,
                spec.kind,
                ert=ert_each,
                reference_size=getattr(self.settings, spec.reference),
                cooldown=self.settings.cooldown,
                seed=spec.seed,
                tolerance=spec.tolerance,
                track=track if spec.tracking else 0.0,
                twin_k=spec.twin_k,
                smooth=spec.smooth,
            )
            for spec in SIGNALS
        }

    # Read-only views kept for callers that inspect a monitor.
    @property
    def references(self) -> dict[str, EmbeddingReference]:
        return self.embeddings.references

    @property
    def learners(self) -> dict[str, Any]:
        return self.embeddings.learners

    @property
    def labels_unmatched(self) -> int:
        return self.join.unmatched

    # -- observing -------------------------------------------------------------------

    def applied(self, position: Positions) -> bool:
        """True when the event at ``position`` was already applied to this monitor.

        A position is ``(input, offset)``: opaque to the monitor (the worker
        passes ``("<topic>:<partition>", offset)``), ordered by ``offset``
        within one input. The checkpoint carries the highest offset applied
        per input, so a restored monitor recognises the events its snapshot
        already contains when they are read again. With several positions,
        the event was applied if any of them was.

        >>> m = StreamMonitor("cam", "v1")
        >>> m.mark(("in:0", 7)); m.applied(("in:0", 7)), m.applied(("in:0", 8)), m.applied(None)
        (True, False, False)
        >>> m.applied((("in:0", 9), ("frames:0", 2))), m.applied((("in:0", 9), ("in:0", 7)))
        (False, True)
        """
        for key, offset in each_position(position):
            done = self.positions.get(key)
            if done is not None and offset <= done:
                return True
        return False

    def mark(self, position: Positions) -> None:
        """Record ``position`` as applied (``observe`` does; commands use it too)."""
        for key, offset in each_position(position):
            if offset > self.positions.get(key, -1):
                self.positions[key] = int(offset)

    def observe(self, event: MonitorEvent, position: Positions = None) -> list[Alert]:
        """Update every signal the event carries; return the alerts it fired.

        ``position`` (optional): where the event was read (see ``applied``);
        recorded once the event is applied. Skipping an event already applied
        is the caller's business (``MonitorRegistry.observe``).

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
        values = self.controls.monitored(self._signal_values(event))
        index = self.events_seen
        if index == 0:
            self.first_ts = event.ts.timestamp()
        elif index == self.settings.reference_size - 1:
            self._measure_rate(event.ts.timestamp(), index + 1)
        self.events_seen += 1
        self.history.append(event.event_id, getattr(event, "frame_index", None),
                            event.ts.isoformat())
        alerts = []
        calm = self.tiles.calm if isinstance(event, Embedding) else None
        signals = self.signals
        for name, value in values.items():
            sig = signals[name]
            # Only a signal still building its reference can complete one now.
            reference = ReferenceCheck.pending(sig, value) if sig.detector is None else None
            detection = sig.update(
                value, index,
                calm if calm is None or not name.startswith("quality.tile_") else None)
            if detection is not None:
                alerts.append(self._alert(detection, event))
                if name == "output.new_classes":  # reported: the new classes are the scene
                    self.novelty.absorb()
            if reference is not None and (warn := ReferenceCheck.check(
                    self.signals[name], reference, index, self.last_alert_ids)) is not None:
                alert = self._alert(warn, event).model_copy(update={"severity": "warning"})
                self.last_alert_ids[name + SUSPECT_SUFFIX] = alert.alert_id
                alerts.append(alert)
        if isinstance(event, Label):
            ready = self.pending_labels.arrive(event, self.join)
        elif isinstance(event, Prediction):
            ready = self.pending_labels.prediction(self.join, event.ts)
        else:
            ready = []
        for matched in ready:
            alerts += self._apply_label(matched, index)
        alerts = self.controls.observed(
            alerts, values, {s: self.signals[s].recent_mean(RESOLVE_MEAN_OF)
                             for s in self.controls.open if s in self.signals},
            event.event_id, event.ts)
        self.mark(position)
        return alerts

    @property
    def ert(self) -> float:
        """The stream's ERT in events: ``settings.ert`` or the weekly budget at the rate."""
        return self.controls.ert(self.settings, self.event_rate, stream_ert)

    def _measure_rate(self, ts: float, events: int) -> None:
        """Fix the event rate; set the budget and persistence of signals not yet calibrated.

        Called once, before the event that completes the first references: no
        signal on every event has calibrated yet.
        """
        self.event_rate = event_rate(self.first_ts, ts, events)
        if self.event_rate is None:
            return
        ert_each = self.ert * len(CALIBRATED)
        for sig in self.signals.values():
            # From a bundle, or calibrated with its request waiting (deferred):
            # keeps the ert it was calibrated for.
            if sig.detector is None and sig.calibration is None:
                sig.ert = ert_each
            share = sig.updates / max(1, events - 1) or 1.0
            hold = self.settings.min_duration_by_signal.get(sig.name, self.settings.min_duration)
            sig.persist = math.ceil(hold * self.event_rate * share)
            sig.fast = math.ceil(self.settings.global_min_duration * self.event_rate * share)
            if sig.name == FROZEN_SIGNAL:
                # Its own duration, whatever the tiles say (a repeat is never local).
                sig.persist = math.ceil(self.settings.frozen_after_s * self.event_rate * share)
                sig.fast = 0
        self.novelty.hold(self.signals["output.new_classes"].persist)

    def _signal_values(self, event: MonitorEvent) -> dict[str, float]:
        # Stateful features first: an embedding of the wrong dimension raises
        # before any other part of the monitor's memory has changed.
        features: dict[str, float] = {}
        if isinstance(event, Embedding):
            features = self.embeddings.values("embedding", event.vector, event.frame_id,
                                              event.event_id)
            features.update(self.tiles.values(event.quality))
        elif isinstance(event, Prediction):
            if event.embedding is not None:
                features = self.embeddings.values(
                    "edge", event.embedding, event.frame_id or event.event_id, event.event_id
                )
            features["output.class_mix"] = float(self.class_ids.id_of(event.top_class))
            novelty = self.novelty.update(event.top_class)
            if novelty is not None:
                features["output.new_classes"] = novelty
            self.join.remember(event)
        values: dict[str, float] = {}
        for spec in EXTRACTORS[type(event)]:
            value = spec.extract(event) if spec.extract is not None else features.get(spec.name)
            if value is not None:
                values[spec.name] = value
        return values

    def _apply_label(self, m: Matched, index: int) -> list[Alert]:
        """A label whose prediction is known: the error signal and the retrain head learn it.

        Its alerts are the label's (their ids name the label's event), at
        whichever event it became applicable (``label_order``).
        """
        alerts = []
        # A disabled performance.error is not fed (as ``controls.monitored`` does for the rest).
        for name, v in self.controls.monitored(
                {"performance.error": float(m.predicted != m.label.true_class)}).items():
            d = self.signals[name].update(v, index)
            if d is not None:
                alerts.append(self._alert(d, m.label))
        learners = self.embeddings.learners.get(m.frame[0]) if m.frame else None
        if m.frame is not None and learners is not None:
            advice = learners.learn(m.frame[1], m.label.true_class, m.predicted)
            if advice is not None:
                alerts.append(self._alert(retrain_detection(advice, index), m.label))
        return alerts

    def _alert(self, d: Detection, event: MonitorEvent) -> Alert:
        alert = compose_alert(
            d, event,
            stream_id=self.stream_id,
            model_version=self.model_version,
            ert=self.ert,
            history=self.history,
            events_seen=self.events_seen,
            movers={n: z for n, s in self.signals.items()
                    if n != d.signal and (z := s.zscore()) is not None},
            examples=(self.embeddings.outlier_examples(d.signal.split(".", 1)[0])
                      if d.signal.endswith(".outlier") else []),
        )
        tile = d.signal.removeprefix("quality.tile_")
        if tile != d.signal and tile in self.tiles.worst:
            alert = alert.model_copy(update={
                "message": f"{alert.message}; worst tile: {tile_name(self.tiles.worst[tile])} "
                "of 4×4 (row 0 at the top)"})
        if d.signal == VIGNETTING_SIGNAL and self.tiles.darkening is not None:
            alert = alert.model_copy(update={
                "message": f"{alert.message}; dark corners: {dark_corners(self.tiles.darkening)}"})
        if d.signal in self.signals:
            self.signals[d.signal].last_alert_id = alert.alert_id
        else:
            self.last_alert_ids[d.signal] = alert.alert_id
        return alert

    def version_notice(self, previous: list[str], event: MonitorEvent) -> Alert:
        """An info alert: this stream now reports a model version it had not before."""
        alert = version_notice(self.stream_id, self.model_version, previous, event,
                               reference_size=self.settings.reference_size,
                               ert=self.ert)
        self.last_alert_ids[VERSION_SIGNAL] = alert.alert_id
        return alert

    # -- deferred calibration (processors.calibration_pool) ------------------------------

    def defer_calibration(self, deferred: bool = True) -> None:
        """Leave each signal's calibration as a request (``calibrations``) instead of running it.

        For a worker that computes them off its event loop and installs
        each result before the stream's next event; a result not installed by
        then is computed inline by the signal itself (``ScalarSignal.defer``).

        >>> m = StreamMonitor("cam", "v1"); m.defer_calibration(); m.calibrations()
        []
        """
        for sig in self.signals.values():
            sig.defer(deferred)

    def calibrations(self) -> list[CalibrationRequest]:
        """The calibration requests of signals whose full reference waits for its detector."""
        # Called after every event the worker applies: an attribute per signal.
        # A signal's request is set when its reference fills (and, from a
        # checkpoint, by ``from_state``) and cleared when it is installed.
        return [r for sig in self.signals.values() if (r := sig.calibration) is not None]

    def install(self, result: Calibrated) -> bool:
        """Install a calibration result (``calibrate(request)``); False when it is stale."""
        sig = self.signals.get(result.signal)
        return sig is not None and sig.install(result)

    # -- re-referencing ----------------------------------------------------------------

    @staticmethod
    def known_signals() -> list[str]:
        """Every signal name a monitor of this build watches."""
        return [spec.name for spec in SIGNALS]

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
        if any(n.startswith("quality.tile_") for n in names):
            # The tile signals are deviations from the tile references: refit those.
            self.tiles.drop()
            names.update(n for n in self.signals if n.startswith("quality.tile_"))
        for src in EMBEDDING_SOURCES:
            if any(n.startswith(f"{src}.") for n in names):
                self.embeddings.drop(src)
                names.update(n for n in self.signals if n.startswith(f"{src}."))
        done = [n for n in self.signals if n in names]
        for n in done:
            self.signals[n].rereference()
        if "output.new_classes" in done:
            self.novelty.absorb()
        return done

    def reference_state(self) -> dict[str, Any]:
        """The calibrated part of the monitor: embedding references and calibrated signals.

        This is what a reference bundle carries (``processors.bundles``);
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
            scorer_state = reference.get("outlier_scorers", {}).get(src)
            m.embeddings.install(
                src, ref, None if scorer_state is None else OutlierScorer.from_state(scorer_state)
            )
        for name, sig_state in reference.get("signals", {}).items():
            if name not in m.signals:
                raise ValueError(
                    f"unknown signal {name!r}; known signals: " + ", ".join(m.signals)
                )
            source = name.split(".", 1)[0]
            if source in EMBEDDING_SOURCES and source not in m.references:
                raise ValueError(f"{name} is calibrated but its embedding reference is missing")
            m.signals[name].load_reference(sig_state, adopt_ert=m.settings.ert is None)
        return m

    # -- state -----------------------------------------------------------------------

    @property
    def warming_vectors(self) -> int:
        """Vectors buffered for a PCA warm-up (the large part of a checkpoint taken then)."""
        return sum(len(vs) for vs in self.embeddings.warmup.values())

    def snapshot(self, *, warmup: bool = True) -> StreamState:
        """The stream's state for the state topic and Redis, with the checkpoint.

        ``warmup=False`` leaves the PCA warm-up vectors out (see ``state``).
        """
        signals = {}
        for name, sig in self.signals.items():
            det = sig.detector
            signals[name] = SignalState(
                signal=name,
                status=signal_status(sig, self.events_seen, sig.reference_size,
                                     self.last_alert_ids),
                detector=sig.detector_kind,
                statistic=_finite(det.statistic) if det is not None else None,
                threshold=_finite(det.threshold) if det is not None else None,
                expected=_finite(sig.ref_mean),
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
            monitor=self.state(warmup=warmup),
            controls=self.controls.view(),
            last_event_ts=(datetime.fromisoformat(self.history.items[-1][2])
                           if self.history.items else None),
        )

    def state(self, *, warmup: bool = True) -> dict[str, Any]:
        """Versioned JSON-safe checkpoint (``MonitorState``); ``from_state`` continues exactly.

        ``warmup=False``: without the vectors of a PCA warm-up in progress
        (up to ``reference_size`` x dim floats): a monitor restored from it
        starts that warm-up again, so it does *not* continue exactly.
        """
        emb = self.embeddings.state()
        return {
            "version": STATE_VERSION,
            "stream_id": self.stream_id,
            "model_version": self.model_version,
            "settings": self.settings.model_dump(),
            "events_seen": self.events_seen,
            "labels_unmatched": self.join.unmatched,
            "references": emb["references"],
            "warming": emb["warming"],
            "warmup_vectors": {src: [np.asarray(v).tolist() for v in vs]
                               for src, vs in self.embeddings.warmup.items() if vs and warmup},
            "recent_events": [list(e) for e in self.history.items],
            "predictions": list(self.join.predictions.items()),
            "class_ids": dict(self.class_ids.ids),
            "novelty": self.novelty.state(),
            "learners": emb["learners"],
            "pred_frames": [[k, list(v)] for k, v in self.join.frames.items()],
            "last_alert_ids": dict(self.last_alert_ids),
            "positions": dict(self.positions),
            "signals": {name: sig.state() for name, sig in self.signals.items()},
            "first_ts": self.first_ts,
            "event_rate": self.event_rate,
            "tiles": self.tiles.state(),
            "controls": self.controls.state(),
            "pending_labels": (self.pending_labels.state()
                               if self.pending_labels or self.pending_labels.overflowed
                               else None),
            "camera": self.camera.state() if self.camera is not None else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamMonitor:
        """Rebuild a monitor from ``state()``.

        Raises
        ------
        ValueError
            Not a checkpoint this build reads (pydantic names the field).
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"monitor state version {state.get('version')!r} not supported")
        s = MonitorState.model_validate(state)
        m = cls(s.stream_id, s.model_version, s.settings)
        m.events_seen = s.events_seen
        m.join.unmatched = s.labels_unmatched
        m.embeddings.load_state({"references": s.references, "learners": s.learners})
        for src, vectors in s.warmup_vectors.items():
            if src in m.embeddings.warmup and src not in m.embeddings.references:
                m.embeddings.warmup[src] = [np.asarray(v, dtype=np.float64) for v in vectors]
        m.history.items.extend(s.recent_events)
        m.join.predictions.update(s.predictions)
        m.join.frames.update(s.pred_frames)
        m.class_ids.ids = dict(s.class_ids)
        if s.novelty is not None:
            m.novelty = ClassNovelty.from_state(s.novelty)
        m.last_alert_ids = dict(s.last_alert_ids)
        m.positions = dict(s.positions)
        if s.pending_labels is not None:
            m.pending_labels = PendingLabels.from_state(s.pending_labels)
        m.signals = {name: ScalarSignal.from_state(st) for name, st in s.signals.items()}
        for sig in m.signals.values():
            sig.pending_calibration()  # checkpointed while pending: its request again
        for spec in SIGNALS:  # a checkpoint from before a signal's smoothing changed
            if spec.name in m.signals:
                m.signals[spec.name].adopt_smoothing(spec.smooth)
        m.first_ts, m.event_rate = s.first_ts, s.event_rate
        m.controls = MonitorControls.from_state(s.controls)
        m.camera = CameraRecord.from_state(s.camera) if s.camera is not None else None
        if s.tiles is not None:
            m.tiles = TileFeatures.from_state(s.tiles, m.settings.reference_size,
                                              _track(m.settings) / TILE_TRACK_SLOWER)
        return m


# Tile baselines track this many times slower than the CUSUMs' baselines: a
# smudge must not be absorbed before persistence confirms it (measured on
# simulated cameras, bench/README.md).
TILE_TRACK_SLOWER = 4.0


def _track(settings: MonitorSettings) -> float:
    """The tracking baseline's weight per event for ``baseline_halflife`` (0: fixed)."""
    halflife = settings.baseline_halflife
    return 1.0 - 0.5 ** (1.0 / halflife) if halflife else 0.0


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
