"""Camera health: what a publisher says of its camera, and a camera gone silent.

Two alert signals, neither a scalar detector (rows of the catalogue's
alert-only table):

- ``camera.status`` -- from ``CameraStatus`` events (``driftline publish``
  sends them): the first ``reconnecting`` of an episode is a warning (the
  source dropped), ``online`` after it an info notice naming the gap
  (seconds without frames, reconnect attempts), ``offline`` an info notice
  after a clean stop or a critical one when the publisher gave up
  reconnecting. A first ``online`` is not an alert.
- ``camera.silent`` -- no monitor input (embedding, frame error,
  prediction, label) of a stream for ``SILENT_AFTER_S`` seconds, judged by
  the worker's wall clock: ``processors.stream_app`` calls :meth:`silent`
  once a second. One alert per silence; the stream's next input re-arms it.
  A stream whose publisher said ``offline`` is not silent, it stopped.

Replay has no wall clock: it routes ``CameraStatus`` lines through the same
:meth:`status` (same ``camera.status`` alerts, same ids) and never raises
``camera.silent``; the gap a recording holds shows as the ``online`` notice
with its ``gap_s`` when the publisher recorded one.

Camera alerts resolve like drift alerts (a ``resolved`` event with the
firing alert's id, ``ts`` and ``lifecycle_event_id`` of the event that
ended it), waiting in :attr:`CameraHealth.outbox` for the router to emit
after the firing ones:

- a ``reconnecting`` warning, an ``offline`` notice (clean stop or gave up)
  -- the camera's open *status* alert -- is resolved by the next status
  that ends it: ``online`` ("back online"), or a new status alert
  ("superseded by <id>"). Only status events resolve them: a frame
  captured before the outage may reach the worker after its status (the
  embed stage), never before it, so replay and the worker resolve the same
  alerts at the same events;
- ``camera.silent`` is resolved by the stream's next input ("sending
  again") or an ``online`` (and superseded by an ``offline``);
- the ``online`` notice reports the end of an outage: it is resolved at
  once, by its own status event (no camera alert stays open on a camera
  that is back).

Alert ids are deterministic like every other: the status event's own
``event_id``, and for a silence the ``event_id`` of the stream's last input
before it. Each stream's record (``processors.monitor.camera_state``) is
shared with its monitors (``link``) and is part of their checkpoints: a
restored stream keeps its reported status, its last input and whether its
silence was alerted, and is watched for silence from its restore.

Examples
--------
>>> from schemas.events import CameraStatus, Prediction
>>> clock = [0.0]
>>> health = CameraHealth(clock=lambda: clock[0])
>>> p = Prediction(event_id="p1", stream_id="cam-1", top_class="cat", confidence=0.9)
>>> health.seen(p, ("t.predictions:0", 7))
>>> clock[0] = 61.0
>>> [a.signal for a in health.silent(60.0)], health.silent(60.0)
(['camera.silent'], [])
>>> down = CameraStatus(event_id="s1", stream_id="cam-1", status="reconnecting", attempt=1)
>>> [(a.signal, a.severity) for a in health.status(down)]
[('camera.status', 'warning')]
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import fields
from datetime import datetime
from typing import Any

from processors.monitor.alerts import Severity, alert_id
from processors.monitor.camera_state import CameraRecord
from processors.monitor.catalogue import SILENT_SIGNAL, STATUS_SIGNAL
from processors.monitor.stream_monitor import Positions, StreamMonitor, each_position
from schemas.events import Alert, CameraStatus, utcnow

MAX_CAMERAS = 100_000
"""Streams whose health one worker remembers (least recently seen forgotten first)."""


def partition_of(position: Positions) -> int | None:
    """The partition number of an input position ``("<topic>:<partition>", offset)``.

    >>> partition_of(("d.embeddings:3", 10)), partition_of(None)
    (3, None)
    """
    for key, _offset in each_position(position):
        part = key.rpartition(":")[2]
        if part.isdigit():
            return int(part)
    return None


class CameraHealth:
    """Per-stream camera status and last-seen time (bounded: ``max_cameras``).

    Parameters
    ----------
    clock : callable
        Seconds, monotonic (``time.monotonic``); only :meth:`silent` compares them.
    max_cameras : int
        Streams remembered; the least recently seen beyond it are forgotten
        (a forgotten stream is watched again from its next event).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_cameras: int = MAX_CAMERAS) -> None:
        self.clock = clock
        self.max_cameras = max_cameras
        self.cameras: OrderedDict[str, CameraRecord] = OrderedDict()
        # ``resolved`` events waiting for the router (``drain``), in order.
        self.outbox: list[Alert] = []

    def drain(self) -> list[Alert]:
        """The lifecycle events waiting since the last ``drain``."""
        out, self.outbox = self.outbox, []
        return out

    def _resolve(self, cam: CameraRecord, which: str, event: Any, reason: str) -> None:
        doc = getattr(cam, which)
        if doc is None:
            return
        setattr(cam, which, None)
        at = getattr(event, "ts", None)
        self.outbox.append(Alert.model_validate({
            **doc, "lifecycle": "resolved", "ts": at if isinstance(at, datetime) else utcnow(),
            "lifecycle_event_id": str(getattr(event, "event_id", "")) or None,
            "lifecycle_by": None, "lifecycle_reason": reason}))

    @staticmethod
    def _open(alert: Alert) -> dict[str, Any]:
        # Without its ``ts`` (the wall clock when it was built), as the monitor's open alerts.
        return alert.model_dump(mode="json", exclude={"ts"})

    def _camera(self, stream_id: str, model_version: str) -> CameraRecord:
        cam = self.cameras.get(stream_id)
        if cam is None:
            cam = self.cameras[stream_id] = CameraRecord(model_version)
            while len(self.cameras) > self.max_cameras:
                self.cameras.popitem(last=False)
        else:
            self.cameras.move_to_end(stream_id)
        return cam

    def link(self, monitor: StreamMonitor) -> None:
        """Share the stream's record with ``monitor`` (whose checkpoint then carries it).

        A record the monitor brought from a checkpoint (``MonitorState.camera``)
        replaces the one here when it has seen more events (a restore after a
        restart or a rebalance); it is then watched for silence from now.

        >>> from processors.monitor.camera_state import CameraRecord
        >>> health, mon = CameraHealth(clock=lambda: 5.0), StreamMonitor("cam", "v1")
        >>> mon.camera = CameraRecord("v1", events=9, last_event_id="p8")
        >>> health.link(mon); health.cameras["cam"] is mon.camera, mon.camera.last_seen
        (True, 5.0)
        """
        live = self.cameras.get(monitor.stream_id)
        saved = monitor.camera
        if saved is live:
            return
        if saved is not None and (live is None or saved.events > live.events):
            saved.last_seen = self.clock() if saved.last_event_id is not None else None
            if live is None:
                live = self._camera(monitor.stream_id, saved.model_version)
            for f in fields(CameraRecord):  # in place: other monitors of the stream share it
                setattr(live, f.name, getattr(saved, f.name))
        monitor.camera = live

    def seen(self, event: object, position: Positions = None) -> None:
        """A monitor input of a stream arrived (``event`` has ``stream_id``, ``event_id``)."""
        stream_id = getattr(event, "stream_id", None)
        if not isinstance(stream_id, str):
            return
        cam = self._camera(stream_id, str(getattr(event, "model_version", "unknown")))
        cam.model_version = str(getattr(event, "model_version", cam.model_version))
        cam.events += 1
        cam.last_event_id = str(getattr(event, "event_id", ""))
        cam.last_seen = self.clock()
        cam.partition = partition_of(position)
        cam.silent_alerted = False
        self._resolve(cam, "open_silent", event, f"sending again (event {cam.last_event_id})")
        if cam.status == "offline":  # inputs again: it is sending, whatever it said
            cam.status = None

    def status(self, event: CameraStatus, position: Positions = None) -> list[Alert]:
        """Apply a status event; the ``camera.status`` alert it raises, if any.

        The alerts it resolves wait in :attr:`outbox`.

        >>> h = CameraHealth()
        >>> down = CameraStatus(event_id="s1", stream_id="cam", status="reconnecting", attempt=1)
        >>> [a] = h.status(down)
        >>> back = CameraStatus(event_id="s2", stream_id="cam", status="online", attempt=1)
        >>> [b] = h.status(back)
        >>> [(e.alert_id == x.alert_id, e.lifecycle, e.lifecycle_event_id)
        ...  for e, x in zip(h.drain(), (a, b))]
        [(True, 'resolved', 's2'), (True, 'resolved', 's2')]
        """
        cam = self._camera(event.stream_id, event.model_version)
        fired = self._status(cam, event, position)
        if event.status == "online":
            self._resolve(cam, "open_status", event, f"back online (event {event.event_id})")
            self._resolve(cam, "open_silent", event, f"back online (event {event.event_id})")
            for notice in fired:  # the outage it reports is over: nothing left open
                cam.open_status = self._open(notice)
                self._resolve(cam, "open_status", event, "a notice: the camera is back online")
        for alert in fired if event.status != "online" else []:
            self._resolve(cam, "open_status", event, f"superseded by {alert.alert_id}")
            if event.status == "offline":
                self._resolve(cam, "open_silent", event, f"superseded by {alert.alert_id}")
            cam.open_status = self._open(alert)
        return fired

    def _status(self, cam: CameraRecord, event: CameraStatus,
                position: Positions) -> list[Alert]:
        cam.events += 1
        if position is not None:
            cam.partition = partition_of(position)
        before, cam.status = cam.status, event.status
        name = event.stream_id
        why = f" ({event.detail})" if event.detail else ""
        if event.status == "reconnecting":
            if before == "reconnecting":
                return []  # one alert per episode, not per attempt
            return [self._alert(event, cam, "warning", float(event.attempt),
                                f"camera {name} lost its source{why}: reconnecting")]
        if event.status == "online":
            if before != "reconnecting":
                return []
            gap = f"{event.gap_s:.1f} s" if event.gap_s is not None else "a gap"
            return [self._alert(event, cam, "info", float(event.gap_s or 0.0),
                                f"camera {name} back online after {gap} without frames "
                                f"({event.attempt} reconnect attempts)")]
        if before == "reconnecting":
            return [self._alert(event, cam, "critical", float(event.attempt),
                                f"camera {name} offline: its publisher gave up reconnecting "
                                f"after {event.attempt} attempts{why}")]
        return [self._alert(event, cam, "info", 0.0, f"camera {name} offline{why}")]

    def silent(self, after_s: float, owned: Collection[int] | None = None,
               now: float | None = None) -> list[Alert]:
        """``camera.silent`` alerts for streams without input for ``after_s`` seconds.

        ``owned``: the input partitions this worker holds now (a stream whose
        partition moved to another worker is that worker's to judge); None:
        every stream. ``after_s`` <= 0 turns the check off.
        """
        if after_s <= 0:
            return []
        now = self.clock() if now is None else now
        out = []
        for stream_id, cam in self.cameras.items():
            if (cam.last_seen is None or cam.silent_alerted or cam.status == "offline"
                    or now - cam.last_seen < after_s):
                continue
            if owned is not None and cam.partition is not None and cam.partition not in owned:
                continue
            cam.silent_alerted = True
            quiet = now - cam.last_seen
            last = cam.last_event_id or ""
            out.append(alert := Alert(
                alert_id=alert_id(stream_id, cam.model_version, SILENT_SIGNAL, "wall_clock",
                                  last),
                stream_id=stream_id, model_version=cam.model_version, signal=SILENT_SIGNAL,
                detector="wall_clock", severity="warning",
                message=(f"camera {stream_id} silent: no events for {quiet:.0f} s "
                         f"(limit {after_s:g} s; last event {last})"),
                statistic=quiet, threshold=after_s,
                detected_index=cam.events, change_index=cam.events,
                detected_event_id=last, change_event_id=last, camera_state="silent",
            ))
            cam.open_silent = self._open(alert)
        return out

    def _alert(self, event: CameraStatus, cam: CameraRecord, severity: Severity, statistic: float,
               message: str) -> Alert:
        return Alert(
            alert_id=alert_id(event.stream_id, event.model_version, STATUS_SIGNAL,
                              "camera_status", event.event_id),
            stream_id=event.stream_id, model_version=event.model_version, signal=STATUS_SIGNAL,
            detector="camera_status", severity=severity, message=message, statistic=statistic,
            detected_index=cam.events - 1, change_index=cam.events - 1,
            detected_event_id=event.event_id, change_event_id=event.event_id,
            change_ts=event.ts, camera_state=event.status,
        )
