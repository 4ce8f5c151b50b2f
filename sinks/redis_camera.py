"""Camera health in Redis: a camera's state is not a signal in drift.

``camera.status`` and ``camera.silent`` alerts (``processors.monitor.camera_health``)
report the camera, not a model. In their signal hashes (``sinks.redis_state``
layout) ``status`` is the camera's state, from ``Alert.camera_state``:

==================  =============================================
``camera.status``   ``ok`` (online again), ``reconnecting``, ``offline``
``camera.silent``   ``silent``, or ``ok`` once it sends again
==================  =============================================

A camera back online clears both hashes; a state snapshot whose camera record
(``processors.monitor.camera_state``) shows its silence re-armed (an input
came after it) clears ``camera.silent``. As for every signal hash, a write
older than the stored ``updated_ts`` changes nothing (so a redelivered or late
event never moves a camera back), and snapshots update only the camera hashes
an alert created. The fleet view reads the result back as one word per
stream (``camera_of``).

Examples
--------
>>> from schemas.events import Alert
>>> a = Alert(alert_id="a1", stream_id="cam", model_version="v1", signal="camera.status",
...           detector="camera_status", message="back", statistic=4.5, detected_index=3,
...           change_index=3, detected_event_id="s3", camera_state="online")
>>> alert_statuses(a)
{'camera.status': 'ok', 'camera.silent': 'ok'}
>>> alert_statuses(a.model_copy(update={"signal": "output.confidence", "camera_state": None}))
{'output.confidence': 'drift'}
>>> camera_of([{"signal": "camera.status", "status": "ok"},
...            {"signal": "camera.silent", "status": "silent"}])
'silent'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from processors.monitor.camera_state import CameraRecord
from processors.monitor.catalogue import SILENT_SIGNAL, STATUS_SIGNAL
from schemas.events import Alert, StreamState

CAMERA_SIGNALS = (STATUS_SIGNAL, SILENT_SIGNAL)
CameraWord = Literal["online", "reconnecting", "offline", "silent"]

# KEYS: camera signal hashes; ARGV: ts ms, then one status per key. Only
# existing hashes, only when not older than what they hold.
WRITE_CAMERA = """
local n = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local prev = tonumber(redis.call('HGET', KEYS[i], 'updated_ts') or '0') or 0
    if tonumber(ARGV[1]) >= prev then
      redis.call('HSET', KEYS[i], 'status', ARGV[i + 1], 'updated_ts', ARGV[1])
      n = n + 1
    end
  end
end
return n
"""


def alert_statuses(alert: Alert) -> dict[str, str]:
    """Signal -> the hash ``status`` an alert sets: its own signal first (``drift`` but for
    the camera's signals), then the camera hashes it clears."""
    if alert.signal not in CAMERA_SIGNALS or alert.camera_state is None:
        return {alert.signal: "drift"}
    if alert.signal == SILENT_SIGNAL:
        return {SILENT_SIGNAL: "silent"}
    if alert.camera_state == "online":
        return {STATUS_SIGNAL: "ok", SILENT_SIGNAL: "ok"}
    return {STATUS_SIGNAL: alert.camera_state}


def snapshot_statuses(state: StreamState) -> tuple[str, dict[str, str]]:
    """``(model version, signal -> status)`` of the camera record in a snapshot, if any.

    >>> from schemas.events import StreamState
    >>> rec = CameraRecord("v1", events=4, last_event_id="e3", status="online")
    >>> s = StreamState(stream_id="cam", model_version="v1", events_seen=4, signals={},
    ...                 monitor={"camera": rec.state()})
    >>> snapshot_statuses(s)
    ('v1', {'camera.silent': 'ok', 'camera.status': 'ok'})
    """
    doc = state.monitor.get("camera")
    if not doc:
        return state.model_version, {}
    try:
        rec = CameraRecord.from_state(doc)
    except ValueError:  # another build's checkpoint: the alerts still say it
        return state.model_version, {}
    out = {SILENT_SIGNAL: "silent" if rec.silent_alerted else "ok"}
    # No status: none reported, or inputs came after an ``offline`` (it sends again).
    out[STATUS_SIGNAL] = "ok" if rec.status in (None, "online") else str(rec.status)
    return rec.model_version, out


def camera_of(signals: Iterable[dict[str, Any]]) -> CameraWord | None:
    """One stream's camera in one word from its signals' hashes, or ``None`` (no camera alert).

    ``reconnecting`` or ``offline`` as reported, else ``silent``, else ``online``.
    """
    status = {s["signal"]: s.get("status") for s in signals if s["signal"] in CAMERA_SIGNALS}
    if not status:
        return None
    reported = status.get(STATUS_SIGNAL)
    if reported == "reconnecting" or reported == "offline":
        return reported
    return "silent" if status.get(SILENT_SIGNAL) == "silent" else "online"


def is_camera(signal: str) -> bool:
    """A camera-health signal (its status is the camera's, never ``drift``)."""
    return signal in CAMERA_SIGNALS
