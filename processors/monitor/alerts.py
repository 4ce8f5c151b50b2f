"""Alerts: deterministic ids and the words an operator reads.

An alert says what changed, what was expected, what is observed, since when
and how sure, in a structured ``Alert`` and a one-line ``message``. Its id is
a hash of (stream, model version, signal, detector, the ``event_id`` of the
event that fired it): a replay after a crash re-creates the same id and every
sink deduplicates on it. Not the stream index of that event (kept in the
alert as ``detected_index``): a stream's embeddings and predictions travel on
two topics, and how a worker interleaves them differs from a recording's
order, which would change every index but not which event fired.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from datetime import datetime
from typing import Literal

from processors.embedding_learners import RetrainAdvice
from processors.monitor.catalogue import RETRAIN_SIGNAL, VERSION_SIGNAL, MonitorEvent
from processors.signal_tracker import Detection
from schemas.events import Alert

EVENT_ID_HISTORY = 1024
Severity = Literal["info", "warning", "critical"]


def alert_id(stream_id: str, model_version: str, signal: str, detector: str,
             event_id: str) -> str:
    """Deterministic alert id from the firing event's own id: a replay re-creates it.

    >>> alert_id("cam-1", "v1", "quality.brightness", "cusum", "frame-3012")[:12]
    '066aa6177093'
    """
    key = f"{stream_id}\x1f{model_version}\x1f{signal}\x1f{detector}\x1f{event_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class EventHistory:
    """(event id, frame index, ts) of a stream's recent events, to say where a change began.

    Bounded (``EVENT_ID_HISTORY`` events); ``at(index)`` is None for an
    event older than that.

    >>> h = EventHistory()
    >>> h.append("e0", 7, "2026-01-01T00:00:00+00:00")
    >>> h.at(0, events_seen=1)[:2], h.at(1, events_seen=1)
    (('e0', 7), None)
    """

    def __init__(self, items: list[tuple[str, int | None, str]] | None = None) -> None:
        self.items: deque[tuple[str, int | None, str]] = deque(items or (),
                                                               maxlen=EVENT_ID_HISTORY)

    def append(self, event_id: str, frame_index: int | None, ts: str) -> None:
        self.items.append((event_id, frame_index, ts))

    def at(self, index: int, *, events_seen: int) -> tuple[str, int | None, str] | None:
        back = events_seen - 1 - index
        if 0 <= back < len(self.items):
            return self.items[-1 - back]
        return None


def retrain_detection(a: RetrainAdvice, index: int) -> Detection:
    """The retrain head's advice as a detection of ``performance.retrain_gain``."""
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


def compose_alert(
    d: Detection,
    event: MonitorEvent,
    *,
    stream_id: str,
    model_version: str,
    ert: float,
    history: EventHistory,
    events_seen: int,
    movers: dict[str, float],
    examples: list[str],
) -> Alert:
    """The ``Alert`` of a detection fired by ``event``.

    ``movers``: every other signal's z-score against its reference (the five
    largest beyond 2 are listed); ``examples``: extra example event ids (the
    latest single odd frames of an outlier signal).
    """
    aid = alert_id(stream_id, model_version, d.signal, d.detector, event.event_id)
    top = dict(sorted(((n, round(z, 2)) for n, z in movers.items() if abs(z) >= 2.0),
                      key=lambda kv: -abs(kv[1]))[:5])
    scale = d.reference_scale if d.reference_scale > 0 else float("nan")
    shift = (d.observed - d.expected) / scale if math.isfinite(scale) else float("nan")
    direction = "rose" if d.observed > d.expected else "fell"
    change = history.at(d.change_index, events_seen=events_seen)
    before = history.at(d.change_index - 1, events_seen=events_seen)
    after = [e[0] for i in (d.change_index, d.detected_index)
             if (e := history.at(i, events_seen=events_seen))]
    det_frame = getattr(event, "frame_index", None)
    severity: Severity = "critical" if math.isfinite(shift) and abs(shift) >= 6 else "warning"
    message = f"{d.signal}: {d.note}" if d.note else (
        f"{d.signal} {direction} from {d.expected:.4g} (reference) to {d.observed:.4g}"
        + (f" ({shift:+.1f} reference scales)" if math.isfinite(shift) else "")
        # Frames when the events carry them: a stream's event numbers count its
        # embeddings and predictions in arrival order, which differs between a
        # worker and a replay (one frame read as "event #300" and "event #800").
        + (f" since frame {change[1]}; detected at frame {det_frame}"
           if change and change[1] is not None and det_frame is not None else
           f" since event #{d.change_index}; detected at event #{d.detected_index}"
           + (f" (frame {det_frame})" if det_frame is not None else ""))
        + (f" by {d.detector} ({d.statistic:.3g} > {d.threshold:.3g}; stream budget:"
           f" 1 false alarm per {ert:g} events)"
           if math.isfinite(d.threshold) else
           f" by {d.detector} (its window split where the two parts' means differ"
           " significantly)")
    )
    return Alert(
        alert_id=aid,
        stream_id=stream_id,
        model_version=model_version,
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
        change_event_id=change[0] if change else None,
        detected_frame_index=det_frame,
        change_frame_index=change[1] if change else None,
        change_ts=datetime.fromisoformat(change[2]) if change else None,
        ert=ert,
        top_movers=top,
        examples_before=[before[0]] if before else [],
        examples_after=after + examples,
    )


def version_notice(
    stream_id: str, model_version: str, previous: list[str], event: MonitorEvent, *,
    reference_size: int, ert: float,
) -> Alert:
    """An info alert: this stream now reports a model version it had not before.

    A new version gets a fresh monitor that warms up on its own events (its
    outputs are not comparable with the old version's reference); without
    this notice a deployment would look like a quiet stream for a while.
    """
    frame = getattr(event, "frame_index", None)
    return Alert(
        alert_id=alert_id(stream_id, model_version, VERSION_SIGNAL, "registry", event.event_id),
        stream_id=stream_id,
        model_version=model_version,
        signal=VERSION_SIGNAL,
        detector="registry",
        severity="info",
        message=(
            f"{stream_id} now reports model version {model_version!r} "
            f"(before: {', '.join(map(repr, previous))})"
            + (f" from frame {frame}" if frame is not None else "")
            + f"; its monitor warms up on the next {reference_size} events "
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
        ert=ert,
    )
