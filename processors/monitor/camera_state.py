"""One camera's health record and its checkpoint (``CameraState``, pydantic).

``processors.monitor.camera_health.CameraHealth`` keeps one ``CameraRecord``
per stream id; each monitor of the stream holds the same record
(``StreamMonitor.camera``) and writes it into its checkpoint, so a camera's
reported status, its last input and whether its silence was already alerted
survive a worker restart with the rest of the monitor, and so do its open
camera alerts (at most one ``camera.status`` and one ``camera.silent``,
which ``processors.monitor.camera_health`` resolves when the camera is
back): about 150 bytes of JSON per snapshot, plus about 1 KB per open alert.

The wall-clock time of the last input (``last_seen``, the worker's monotonic
clock) does not cross processes: a restored camera is watched for silence
from the moment it is restored.

Examples
--------
>>> rec = CameraRecord("v1", events=3, last_event_id="p2", partition=1, status="reconnecting")
>>> back = CameraRecord.from_state(rec.state())
>>> (back.events, back.last_event_id, back.status, back.last_seen)
(3, 'p2', 'reconnecting', None)
>>> CameraRecord.from_state({**rec.state(), "status": "asleep"})
Traceback (most recent call last):
...
ValueError: camera checkpoint: status: Input should be 'online', 'reconnecting' or 'offline'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CameraStatusName = Literal["online", "reconnecting", "offline"]
CAMERA_STATE_VERSION: Literal[1] = 1


class CameraState(BaseModel):
    """A ``CameraRecord`` in a monitor's checkpoint (``MonitorState.camera``)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = CAMERA_STATE_VERSION
    model_version: str = Field(min_length=1, max_length=200)
    events: int = Field(ge=0)
    last_event_id: str | None = Field(default=None, max_length=200)
    partition: int | None = Field(default=None, ge=0)
    status: CameraStatusName | None = None
    silent_alerted: bool = False
    # Its open camera alerts (``Alert`` JSON without ``ts``), resolved by what ends them
    # (absent in checkpoints of earlier builds: none open).
    open_status: dict[str, Any] | None = None
    open_silent: dict[str, Any] | None = None


@dataclass
class CameraRecord:
    """What one worker knows of a camera (``processors.monitor.camera_health``)."""

    model_version: str
    events: int = 0  # inputs and status events seen: the alerts' ``detected_index``
    last_event_id: str | None = None  # the last monitor input's (None: none seen yet)
    last_seen: float | None = None  # clock() at the last monitor input (not checkpointed)
    partition: int | None = None  # input partition of the last input (None: unknown)
    status: CameraStatusName | None = None  # last reported status
    silent_alerted: bool = False
    open_status: dict[str, Any] | None = None  # the open camera.status alert (JSON, no ts)
    open_silent: dict[str, Any] | None = None  # the open camera.silent alert

    def state(self) -> dict[str, Any]:
        """The checkpoint (``CameraState`` as JSON-safe data)."""
        return {"version": CAMERA_STATE_VERSION, "model_version": self.model_version,
                "events": self.events, "last_event_id": self.last_event_id,
                "partition": self.partition, "status": self.status,
                "silent_alerted": self.silent_alerted, "open_status": self.open_status,
                "open_silent": self.open_silent}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CameraRecord:
        """A record from ``state()`` (``last_seen`` unset); ``ValueError`` naming a bad field."""
        try:
            s = CameraState.model_validate(state)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"camera checkpoint: {where}: {err['msg']}") from None
        return cls(s.model_version, s.events, s.last_event_id, None, s.partition, s.status,
                   s.silent_alerted, s.open_status, s.open_silent)
