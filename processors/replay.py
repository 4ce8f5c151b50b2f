"""Offline replay: the stream app's monitor over a JSONL recording. No Kafka.

Input (public contract): one wire event per line, UTF-8 JSON exactly as on
the Kafka topics (``schemas/json/*.schema.json``): ``frame``, ``prediction``,
``label`` or ``embedding`` events of any number of streams, in the order a
worker would see them, and ``command`` events (the control topic's: a
``rereference`` is applied at that point of the recording). Blank lines are
skipped (they still count as a line index). Frames are decoded, measured
and embedded with the configured embedder, exactly as the worker does.

Output (public contract): one JSON object per line on stdout for every alert,
``{"index": i, "alert": {...}}`` where ``i`` is the 0-based line index of the
event that fired it and ``alert`` is an ``Alert`` wire event. Lines that fail
go to ``rejects`` as ``{"index": i, "reason": ..., "detail": ...}`` (the
offline twin of the dead-letter topic); the replay goes on.

Examples
--------
>>> import io, json
>>> bad = io.BytesIO(b'{"kind": "label"}\\nnot json\\n')
>>> out = list(replay_lines(bad))
>>> [(r.index, r.reason) for r in out]
[(0, 'invalid_event'), (1, 'invalid_json')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from driftline.errors import InvalidEvent, PermanentError
from driftline.settings import EmbedderSettings, MonitorSettings
from processors.frame_pipeline import FramePipeline, frame_error
from processors.monitor import MonitorRegistry
from schemas.events import Alert, Command, Embedding, Frame, FrameError, Label, Prediction
from schemas.wire import DEFAULT_MAX_BYTES, decode_event


@dataclass(frozen=True)
class Fired:
    """An alert and the line index of the event that fired it."""

    index: int
    alert: Alert


@dataclass(frozen=True)
class Rejected:
    """A line that could not be processed, and why."""

    index: int
    reason: str
    detail: str


def replay_lines(
    lines: Iterable[bytes],
    *,
    monitor: MonitorSettings | None = None,
    pipeline: FramePipeline | Callable[[], FramePipeline] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    registry: MonitorRegistry | None = None,
) -> Iterator[Fired | Rejected]:
    """Run the monitor over wire events; yield alerts and rejected lines in order.

    ``pipeline`` (or a factory for it) is only built when the first frame
    arrives, so recordings of predictions/embeddings never load a model.
    ``registry`` (default: a new one with ``monitor`` settings, which loads
    the reference bundles of ``monitor.reference_path`` like the worker)
    lets a caller look at the monitors afterwards.
    """
    if registry is None:
        registry = MonitorRegistry(monitor)
    built: FramePipeline | None = pipeline if isinstance(pipeline, FramePipeline) else None
    for index, raw in enumerate(lines):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            event = decode_event(raw, max_bytes)
            if isinstance(event, Frame):
                if built is None:
                    built = pipeline() if callable(pipeline) else FramePipeline.from_settings(
                        EmbedderSettings()
                    )
                (result,) = built.process([event])
                if isinstance(result, PermanentError):
                    # As in the worker: the frame is rejected, and its stream's
                    # monitor counts it (quality.undecodable).
                    yield Rejected(index, result.reason, str(result))
                    _, alerts = registry.observe(frame_error(event, result))
                    for alert in alerts:
                        yield Fired(index, alert)
                    continue
                event = result
            if isinstance(event, Command):
                from processors.reference import apply_command

                apply_command(registry, event)
                continue
            if not isinstance(event, Embedding | FrameError | Prediction | Label):
                raise InvalidEvent(
                    f"{type(event).__name__} is not an input event", reason="unknown_kind"
                )
            _, alerts = registry.observe(event)
        except PermanentError as exc:
            yield Rejected(index, exc.reason, str(exc))
            continue
        for alert in alerts:
            yield Fired(index, alert)
