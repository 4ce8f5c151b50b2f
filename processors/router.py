"""One event router for the worker and replay: raw bytes in, what to emit out. No Kafka.

The faust worker (``processors.stream_app``) and ``driftline replay``
(``processors.replay``) route every event through this module, so the two
cannot drift apart: the same bytes give the same alerts, the same rejections
(with the same reasons) and the same monitor state.

Where an event may come from (``Source``):

- ``FRAMES``: frames, to be embedded. The worker batches them through
  ``decode_frame`` / ``embed`` / ``embedded`` itself (embedding is the
  expensive step and runs in a thread); its output goes to the embeddings
  topic, keyed by stream, and comes back in as ``INPUTS``.
- ``INPUTS``: embeddings, frame errors, predictions and labels: the monitor's;
  camera status events (on the predictions topic) go to ``Router.health``
  (``processors.monitor.camera_health``), which every input also tells it saw.
- ``CONTROL``: operator commands only. A command on an input topic (or an
  event on the control topic) is rejected (``unknown_kind``), not acted on:
  whoever may write events must not be able to re-reference a stream.
- ``RECORDING``: any of the above in one file (replay). A frame is embedded
  and its embedding (or frame error) routed at once, in place of the
  embeddings topic's round trip.

Failure modes it protects against: bad input (``PermanentError``) becomes a
``Rejected`` with a reason code (the dead letter's); an exception the monitor
raises on one event (a bug) becomes ``monitor_error`` instead of stopping
every stream that shares the partition in a crash-restart loop.

Examples
--------
>>> router = Router(MonitorRegistry())
>>> router.route(b'not json', Source.INPUTS).rejected[0].reason
'invalid_json'
>>> cmd = b'{"kind": "command", "stream_id": "cam-1", "action": "rereference"}'
>>> router.route(cmd, Source.INPUTS).rejected[0].reason
'unknown_kind'
>>> router.route(cmd, Source.CONTROL).rejected
[]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from driftline.errors import InvalidEvent, PermanentError
from driftline.settings import EmbedderSettings
from processors.commands import ControlAuth, apply_command_events
from processors.frame_pipeline import FramePipeline, frame_error
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.monitor.camera_health import CameraHealth
from processors.monitor.stream_monitor import Positions
from schemas.events import (
    Alert,
    CameraStatus,
    Command,
    Embedding,
    Frame,
    FrameError,
    Label,
    Prediction,
)
from schemas.wire import DEFAULT_MAX_BYTES, decode_as, decode_event

log = logging.getLogger("driftline.router")

MONITOR_INPUTS = (Embedding, FrameError, Prediction, Label)


class Source(StrEnum):
    """Where an event came from (see the module docstring)."""

    FRAMES = "frames"
    INPUTS = "inputs"
    CONTROL = "control"
    RECORDING = "recording"


@dataclass(frozen=True)
class Rejected:
    """An event that could not be used: dead-lettered by the worker, reported by replay."""

    reason: str
    detail: str
    stage: str


@dataclass
class Routed:
    """What one event produced."""

    alerts: list[Alert] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # For the embeddings topic (worker only: replay routes them in place).
    embedded: list[Embedding | FrameError] = field(default_factory=list)
    # Monitors whose state this event changed (snapshotted by the worker).
    touched: list[StreamMonitor] = field(default_factory=list)
    # Monitors a command changed, with the signals it re-referenced.
    applied: list[tuple[StreamMonitor, list[str]]] = field(default_factory=list)
    command: Command | None = None
    # The event was already applied at this position (read again after a
    # restart or a rebalance): nothing changed, nothing to emit.
    skipped: bool = False

    def extend(self, other: Routed) -> None:
        self.alerts += other.alerts
        self.rejected += other.rejected
        self.embedded += other.embedded
        self.touched += other.touched
        self.applied += other.applied
        self.command = other.command or self.command
        self.skipped = self.skipped or other.skipped


class Router:
    """Routes events of any number of streams into one ``MonitorRegistry``.

    Parameters
    ----------
    registry : MonitorRegistry
        The monitors (and the reference bundles new ones start from).
    pipeline : FramePipeline or callable returning one, optional
        The embedder for frames; a factory is called on the first frame, so a
        recording of predictions never loads a model. Default: the packaged
        embedder with default ``EmbedderSettings``.
    max_bytes : int
        Larger events are rejected (``oversize``).
    control : ControlAuth, optional
        Verifies commands from the control topic (``unsigned_command``,
        ``bad_signature``, ``stale_command``, ``replayed_command``); ``None``
        applies every well-formed command. A recording's commands (replay)
        are not verified: the file is the operator's own.
    """

    def __init__(
        self,
        registry: MonitorRegistry,
        *,
        pipeline: FramePipeline | Callable[[], FramePipeline] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        control: ControlAuth | None = None,
    ) -> None:
        self.registry = registry
        # Camera status events and the last-seen times the worker's silence check reads
        # (the registry's: each stream's record is checkpointed with its monitors).
        self.health: CameraHealth = registry.health
        self.control = control
        self.max_bytes = max_bytes
        self._pipeline = pipeline if isinstance(pipeline, FramePipeline) else None
        self._factory = pipeline if callable(pipeline) else None

    # -- frames ----------------------------------------------------------------------

    @property
    def pipeline(self) -> FramePipeline:
        if self._pipeline is None:
            self._pipeline = (self._factory() if self._factory is not None
                              else FramePipeline.from_settings(EmbedderSettings(), self.max_bytes))
        return self._pipeline

    def decode_frame(self, raw: bytes) -> Frame:
        """A frame from the frames topic; ``PermanentError`` if it is not one."""
        return decode_as(Frame, raw, self.max_bytes)

    def embed(self, frames: list[Frame]) -> list[Embedding | PermanentError]:
        """Embed a batch of frames (the expensive step; thread-safe to run off the loop)."""
        return self.pipeline.process(frames)

    @staticmethod
    def embedded(frame: Frame, result: Embedding | PermanentError) -> Routed:
        """What an embedded frame emits: its embedding, or a rejection and a frame error.

        A frame the embedder cannot use is rejected *and* marked on the
        embeddings topic (``FrameError``, same key), in order with the
        stream's embeddings, so its monitor counts it (``quality.undecodable``):
        a camera that starts sending broken frames alerts instead of going quiet.
        """
        if isinstance(result, PermanentError):
            return Routed(rejected=[Rejected(result.reason, str(result), "embedder")],
                          embedded=[frame_error(frame, result)])
        return Routed(embedded=[result])

    # -- everything else ---------------------------------------------------------------

    def route(self, raw: bytes, source: Source, position: Positions = None) -> Routed:
        """Decode one event and apply it; never raises for bad input or a monitor bug.

        ``position``: where the event was read, ``(input, offset)`` (the
        worker's ``("<topic>:<partition>", offset)``). An event its monitor
        has already applied at that position is skipped (``Routed.skipped``),
        so reading an input again after a restart changes nothing twice.
        """
        try:
            event = decode_event(raw, self.max_bytes)
        except PermanentError as exc:
            return Routed(rejected=[Rejected(exc.reason, str(exc), _stage(source))])
        return self.route_event(event, source, position)

    def route_event(self, event: object, source: Source,
                    position: Positions = None) -> Routed:
        """Apply one decoded event (see ``route``)."""
        try:
            if isinstance(event, Frame) and source in (Source.FRAMES, Source.RECORDING):
                out = self.embedded(event, self.embed([event])[0])
                for e in list(out.embedded):
                    out.extend(self.route_event(e, Source.INPUTS))
                if source is Source.RECORDING:
                    out.embedded.clear()  # routed in place: no embeddings topic offline
                return out
            if isinstance(event, Command) and source in (Source.CONTROL, Source.RECORDING):
                if self.control is not None and source is Source.CONTROL:
                    self.control.verify(event)
                return self._command(event, position)
            if isinstance(event, CameraStatus) and source in (Source.INPUTS, Source.RECORDING):
                return self._status(event, position)
            if isinstance(event, MONITOR_INPUTS) and source in (Source.INPUTS, Source.RECORDING):
                if self.registry.applied(event.stream_id, event.model_version, position):
                    return Routed(skipped=True)
                self.health.seen(event, position)
                mon, alerts = self.registry.observe(event, position)
                # Firing alerts, then the lifecycle events the event caused (a
                # camera.silent it ends among them).
                return Routed(alerts=alerts + mon.controls.drain() + self.health.drain(),
                              touched=[mon])
            raise InvalidEvent(
                f"{type(event).__name__} events do not belong on the {source.value} topic",
                reason="unknown_kind",
            )
        except PermanentError as exc:
            return Routed(rejected=[Rejected(exc.reason, str(exc), _stage(source))])
        except Exception as exc:
            # A bug that one event triggers must not stall the partition: the
            # worker would restart the agent, re-read the same unacked batch
            # and crash again, forever, for every camera on it. The event is
            # rejected (dead-lettered with its bytes: replay it once fixed)
            # and the stream goes on; the log has the traceback.
            log.exception("monitor failed on a %s event", type(event).__name__)
            return Routed(rejected=[Rejected("monitor_error", f"{type(exc).__name__}: {exc}",
                                             _stage(source))])

    def _status(self, event: CameraStatus, position: Positions) -> Routed:
        # A status event changes the stream's camera record, which a monitor of
        # the stream checkpoints: the one of its (stream, version), else the one
        # of the stream's last input's version, else a new one of its (stream,
        # version) -- a camera that reports before any input keeps its status
        # and open alerts across a restart too. The event is skipped when read
        # again and touches that monitor (snapshotted before the event is acked).
        mon = self.registry.existing(event.stream_id, event.model_version)
        cam = self.health.cameras.get(event.stream_id)
        if mon is None and cam is not None:
            mon = self.registry.existing(event.stream_id, cam.model_version)
        if mon is not None and mon.applied(position):
            return Routed(skipped=True)
        if mon is None:
            mon = self.registry.get(event.stream_id, event.model_version)
        alerts = self.health.status(event, position)
        alerts += self.health.drain()  # the camera alerts it resolves
        self.health.link(mon)
        mon.mark(position)
        return Routed(alerts=alerts, touched=[mon])

    def _command(self, command: Command, position: Positions) -> Routed:
        # A command may target several monitors (every version of a stream);
        # each records the command's position, and one that already applied
        # it (its snapshot was delivered before a crash) is left out.
        for key in [k for k in self.registry.evicted if k[0] == command.stream_id]:
            self.registry.get(*key)  # evicted monitors of the stream are commanded too
        monitors = self.registry.monitors
        done = {k: m for k, m in monitors.items()
                if k[0] == command.stream_id and m.applied(position)}
        if command.model_version is not None and (command.stream_id,
                                                  command.model_version) in done:
            return Routed(skipped=True, command=command)
        before = dict(monitors)
        for k in done:
            del monitors[k]
        try:
            applied, lifecycle = apply_command_events(self.registry, command)
        finally:
            if done:  # put them back, in their order
                created = {k: m for k, m in monitors.items() if k not in before}
                monitors.clear()
                monitors.update(before)
                monitors.update(created)
        for mon, _ in applied:
            mon.mark(position)
        if done and not applied:
            return Routed(skipped=True, command=command)
        return Routed(alerts=lifecycle, applied=applied, touched=[m for m, _ in applied],
                      command=command)


def _stage(source: Source) -> str:
    return "embedder" if source is Source.FRAMES else "monitor"
