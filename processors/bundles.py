"""Reference bundles: a stream's calibrated monitor state, in a JSON file.

(``processors.bundle_export`` builds one from a recording; this module reads,
writes and checks them.)

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

Bundles are read and checked once, at start-up, by ``load_bundles`` (the
CLI's commands call it before they start; settings themselves stay plain
data): a missing, unreadable or
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
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from driftline.errors import ConfigError
from driftline.settings import MonitorSettings
from processors.monitor import StreamKey, StreamMonitor
from schemas.events import Name, StreamId, utcnow

BUNDLE_VERSION: Literal[1] = 1
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


def load_bundles(settings: MonitorSettings) -> dict[StreamKey, ReferenceBundle]:
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
    bundles: dict[StreamKey, ReferenceBundle] = {}
    where: dict[StreamKey, Path] = {}
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


def load_references(settings: MonitorSettings) -> dict[StreamKey, dict[str, Any]]:
    """``load_bundles`` as the ``MonitorRegistry(references=...)`` argument."""
    return {key: bundle.reference() for key, bundle in load_bundles(settings).items()}
