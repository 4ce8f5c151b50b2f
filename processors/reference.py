"""Reference bundles: a stream's calibrated monitor state, in a JSON file.

A stream's monitor normally builds its reference from the stream's first
``REFERENCE_SIZE`` events (several hundred events of warm-up before every
signal is watched). A *reference bundle* skips that: it is the calibrated
part of a monitor (``StreamMonitor.reference_state()``: embedding references
and calibrated detectors) taken after running the monitor over a recording
of clean data -- exactly as ``driftline replay`` runs it -- and written to a
versioned JSON file::

    driftline reference export clean.jsonl --stream cam-7 --out cam-7.json
    DRIFTLINE_MONITOR__REFERENCE_PATH=cam-7.json driftline worker

With ``DRIFTLINE_MONITOR__REFERENCE_PATH`` (one bundle, or a directory of
``*.json`` bundles, one per stream/model version) a *new* monitor of a
bundled stream starts from its bundle: watched from its first event. A
monitor restored from a state snapshot continues from the snapshot (the
snapshot is newer); a re-reference (``driftline rereference``) drops the
bundle's reference for live data like any other.

Bundles are checked when the settings are read: a missing, unreadable or
invalid file, or one calibrated for other monitor parameters (false-alarm
budget, tolerances, tracking half-life, embedding dimension), stops the
process at start-up with a ``ConfigError`` naming the setting.

Format (``BUNDLE_VERSION`` 1)::

    {"bundle_version": 1, "kind": "reference_bundle",
     "stream_id": ..., "model_version": ..., "created_ts": ISO 8601,
     "settings": {...MonitorSettings...}, "events_used": N, "source": "clean.jsonl",
     "references": {"embedding": {...PCA basis...}},
     "signals": {"quality.brightness": {...detector...}, ...}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from driftline.errors import ConfigError, InvalidEvent, PermanentError
from driftline.settings import MonitorSettings
from processors.frame_pipeline import FramePipeline
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.replay import Fired, replay_lines
from schemas.events import Command, Name, StreamId, utcnow
from schemas.wire import DEFAULT_MAX_BYTES

BUNDLE_VERSION = 1
SETTING = "DRIFTLINE_MONITOR__REFERENCE_PATH"


class ReferenceBundle(BaseModel):
    """One stream's calibrated reference (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_version: Literal[1] = BUNDLE_VERSION
    kind: Literal["reference_bundle"] = "reference_bundle"
    stream_id: StreamId
    model_version: Name
    created_ts: AwareDatetime = Field(default_factory=utcnow)
    settings: dict[str, Any] = Field(default_factory=dict)
    events_used: int = Field(default=0, ge=0)
    source: str | None = None
    references: dict[str, dict[str, Any]] = Field(default_factory=dict)
    signals: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.stream_id, self.model_version)

    def reference(self) -> dict[str, Any]:
        """The ``StreamMonitor.from_reference`` argument."""
        return {"references": self.references, "signals": self.signals}


class RecordingNotClean(PermanentError):
    """The recording given to ``export`` changed: a signal alerted while building the reference."""

    reason = "recording_not_clean"


def bundle_of(
    monitor: StreamMonitor, *, events_used: int, source: str | None = None
) -> ReferenceBundle:
    """The bundle of a monitor's current calibrated state."""
    part = monitor.reference_state()
    return ReferenceBundle(
        stream_id=monitor.stream_id,
        model_version=monitor.model_version,
        settings=monitor.settings.model_dump(mode="json"),
        events_used=events_used,
        source=source,
        references=part["references"],
        signals=part["signals"],
    )


def monitor_from_bundle(
    bundle: ReferenceBundle, settings: MonitorSettings | None = None
) -> StreamMonitor:
    """A new monitor of the bundle's stream, calibrated from its first event."""
    return StreamMonitor.from_reference(
        bundle.stream_id, bundle.model_version, bundle.reference(), settings
    )


def write_bundle(bundle: ReferenceBundle, path: Path) -> None:
    """Write atomically (temporary file, then rename): a reader never sees half a bundle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(bundle.model_dump_json(indent=1) + "\n")
    os.replace(tmp, path)


def read_bundle(path: Path) -> ReferenceBundle:
    """Parse one bundle file; ``ValueError``/``OSError`` on anything wrong."""
    obj = json.loads(path.read_bytes())
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    version = obj.get("bundle_version")
    if version != BUNDLE_VERSION:
        raise ValueError(f"bundle_version {version!r} not supported (this build reads "
                         f"{BUNDLE_VERSION})")
    try:
        return ReferenceBundle.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ValueError(f"invalid bundle at {where}: {first['msg']}") from None


def load_bundles(settings: MonitorSettings) -> dict[tuple[str, str], ReferenceBundle]:
    """Every bundle under ``settings.reference_path``, by (stream, model version).

    Each is also installed in a throw-away monitor with ``settings``, so a
    bundle calibrated for other parameters fails here (at start-up), not on
    its stream's first event. Raises ``ConfigError`` naming
    ``DRIFTLINE_MONITOR__REFERENCE_PATH`` and the offending file.
    """
    root = settings.reference_path
    if root is None:
        return {}
    if root.is_dir():
        files = sorted(p for p in root.glob("*.json") if p.is_file())
        if not files:
            raise ConfigError(SETTING, f"directory {str(root)!r} holds no *.json bundle")
    elif root.exists():
        files = [root]
    else:
        raise ConfigError(SETTING, f"{str(root)!r} does not exist")
    bundles: dict[tuple[str, str], ReferenceBundle] = {}
    where: dict[tuple[str, str], Path] = {}
    for path in files:
        try:
            bundle = read_bundle(path)
        except OSError as exc:
            raise ConfigError(
                SETTING, f"{str(path)!r} is unreadable: {exc.strerror or exc}"
            ) from None
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ConfigError(
                SETTING, f"{str(path)!r} is not a valid reference bundle: {exc}"
            ) from None
        if bundle.key in bundles:
            raise ConfigError(
                SETTING, f"{str(path)!r} and {str(where[bundle.key])!r} are both bundles of "
                f"stream {bundle.stream_id!r} model version {bundle.model_version!r}",
            )
        try:
            monitor_from_bundle(bundle, settings)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                SETTING, f"{str(path)!r} does not fit this monitor ({exc}); re-export it with "
                "`driftline reference export`",
            ) from None
        bundles[bundle.key] = bundle
        where[bundle.key] = path
    return bundles


def apply_command(
    registry: MonitorRegistry, command: Command
) -> list[tuple[StreamMonitor, list[str]]]:
    """Apply an operator command; return each monitor changed and its re-referenced signals.

    ``model_version`` None: every monitor of the stream the registry holds.
    A named version without a monitor gets one only if it has a reference
    bundle (re-referencing then means "from live data, not the bundle");
    otherwise a new monitor warms up anyway, and creating one for a misspelt
    stream would publish snapshots of a stream that does not exist.

    Raises
    ------
    InvalidEvent
        ``unknown_signal``: a signal this build does not watch -- checked
        before anything changes and whether or not a monitor exists, so a
        bad command is dead-lettered the same way on every worker.
    """
    known = StreamMonitor.known_signals()
    unknown = [s for s in command.signals or [] if s not in known]
    if unknown:
        raise InvalidEvent(
            f"command {command.command_id}: unknown signal(s) "
            f"{', '.join(map(repr, unknown))}; known signals: {', '.join(known)}",
            reason="unknown_signal",
        )
    if command.model_version is None:
        targets = [m for (sid, _), m in registry.monitors.items() if sid == command.stream_id]
    else:
        key = (command.stream_id, command.model_version)
        exists = key in registry.monitors or key in registry.bundles
        targets = [registry.get(*key)] if exists else []
    out = []
    for mon in targets:
        try:
            out.append((mon, mon.rereference(command.signals)))
        except ValueError as exc:  # a monitor restored from an older build's signal table
            raise InvalidEvent(str(exc), reason="unknown_signal") from exc
    return out


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
