"""Offline replay: the stream app's monitor over a JSONL recording. No Kafka.

Input (public contract): one wire event per line, UTF-8 JSON exactly as on
the Kafka topics (``schemas/json/*.schema.json``): ``frame``, ``prediction``,
``label``, ``embedding`` or ``frame_error`` events of any number of streams, in the order a
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

from driftline.settings import MonitorSettings
from processors.bundles import load_references
from processors.frame_pipeline import FramePipeline
from processors.monitor import MonitorRegistry
from processors.router import Router, Source
from schemas.events import Alert
from schemas.wire import DEFAULT_MAX_BYTES


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

    Every line goes through ``processors.router`` exactly as the worker's
    events do. ``pipeline`` (or a factory for it) is only built when the
    first frame arrives, so recordings of predictions/embeddings never load a
    model. ``registry`` (default: a new one with ``monitor`` settings, holding
    the reference bundles of ``monitor.reference_path`` as the worker's does)
    lets a caller look at the monitors afterwards.
    """
    if registry is None:
        settings = monitor or MonitorSettings()
        registry = MonitorRegistry(settings, load_references(settings))
    router = Router(registry, pipeline=pipeline, max_bytes=max_bytes)
    for index, raw in enumerate(lines):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        routed = router.route(raw, Source.RECORDING)
        for r in routed.rejected:
            yield Rejected(index, r.reason, r.detail)
        for alert in routed.alerts:
            yield Fired(index, alert)
