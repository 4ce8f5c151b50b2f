"""Build a reference bundle from a recording of clean data (``driftline reference export``).

The recording goes through ``replay_lines`` -- the monitor exactly as
``driftline replay`` and the worker run it -- and the calibrated part of the
stream's monitor becomes the bundle (``processors.bundles``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from driftline.errors import PermanentError
from driftline.settings import MonitorSettings
from processors.bundles import ReferenceBundle, bundle_of
from processors.frame_pipeline import FramePipeline
from processors.monitor import MonitorRegistry
from processors.replay import Fired, replay_lines
from schemas.wire import DEFAULT_MAX_BYTES


class RecordingNotClean(PermanentError):
    """The recording given to ``export`` changed: a signal alerted while building the reference."""

    reason = "recording_not_clean"


@dataclass(frozen=True)
class Export:
    """What ``export_reference`` built, and what it could not."""

    bundle: ReferenceBundle
    warming_up: list[str]
    rejected: int


def _stream_of(raw: bytes) -> tuple[str | None, str | None]:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    return obj.get("stream_id"), obj.get("model_version", "unknown")


def export_reference(
    lines: Iterable[bytes],
    *,
    stream_id: str,
    model_version: str | None = None,
    monitor: MonitorSettings | None = None,
    pipeline: FramePipeline | Callable[[], FramePipeline] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    source: str | None = None,
) -> Export:
    """Run the monitor over a recording of clean data; return the stream's bundle.

    The events of ``stream_id`` (and ``model_version``; default: the first
    one seen for that stream) go through ``replay_lines`` -- the monitor
    exactly as ``driftline replay`` and the worker run it -- until every
    signal has calibrated or the recording ends. Signals that never
    calibrated (e.g. ``performance.error`` without labels) are listed in
    ``warming_up``; they warm up on live data.

    Raises
    ------
    RecordingNotClean
        A signal alerted: the recording contains a change, and a reference
        built across it would hide the next one.
    ValueError
        No event of the stream, or no signal calibrated.
    """
    settings = (monitor or MonitorSettings()).model_copy(update={"reference_path": None})
    registry = MonitorRegistry(settings)
    target: dict[str, str] = {}

    def calibrated() -> bool:
        mon = registry.monitors.get((stream_id, target.get("mv", "")))
        return mon is not None and all(s.detector is not None for s in mon.signals.values())

    def of_stream() -> Iterator[bytes]:
        for raw in lines:
            if calibrated():
                return
            sid, mv = _stream_of(raw)
            if sid != stream_id:
                continue
            if model_version is not None and mv != model_version:
                continue
            if isinstance(mv, str):
                target.setdefault("mv", mv)
                if mv != target["mv"]:
                    continue
            yield raw

    rejected = 0
    for item in replay_lines(
        of_stream(), monitor=settings, pipeline=pipeline, max_bytes=max_bytes, registry=registry
    ):
        if isinstance(item, Fired):
            raise RecordingNotClean(
                f"{item.alert.signal} alerted at event #{item.alert.detected_index} of "
                f"{stream_id}: the recording is not clean ({item.alert.message}); export from "
                "a recording without changes"
            )
        rejected += 1
    mon = registry.monitors.get((stream_id, target.get("mv", model_version or "")))
    if mon is None:
        raise ValueError(
            f"no event of stream {stream_id!r}"
            + (f" model version {model_version!r}" if model_version else "")
            + " in the recording"
        )
    bundle = bundle_of(mon, events_used=mon.events_seen, source=source)
    if not bundle.signals:
        raise ValueError(
            f"no signal of {stream_id!r} calibrated over its {mon.events_seen} events; a "
            f"reference needs {settings.reference_size} values per signal (embedding signals: "
            f"{2 * settings.reference_size} embeddings)"
        )
    warming = [n for n in mon.signals if n not in bundle.signals]
    return Export(bundle=bundle, warming_up=warming, rejected=rejected)
