"""Monitors by (stream, model version), created on first sight.

The router (worker and replay alike) feeds events through one registry, so
one process watches any number of streams; memory per stream is bounded.
Reference bundles are handed in as data (``processors.bundles.load_bundles``
reads and checks them once, at start-up): a new monitor of a bundled stream
starts calibrated.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from driftline.errors import ConfigError
from driftline.settings import MonitorSettings
from processors.monitor.camera_health import CameraHealth
from processors.monitor.catalogue import SPECS, MonitorEvent
from processors.monitor.stream_monitor import Positions, StreamMonitor
from schemas.events import Alert, StreamState

StreamKey = tuple[str, str]


def check_holds(settings: MonitorSettings) -> None:
    """Fail at start-up when ``min_duration_by_signal`` names a signal the catalogue lacks.

    >>> check_holds(MonitorSettings(min_duration_by_signal={"output.confidense": 30}))
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigError: DRIFTLINE_MONITOR__MIN_DURATION_BY_SIGNAL: unknown signal(s) \
'output.confidense'; known signals: ...
    """
    unknown = sorted(set(settings.min_duration_by_signal) - set(SPECS))
    if unknown:
        raise ConfigError("DRIFTLINE_MONITOR__MIN_DURATION_BY_SIGNAL",
                          f"unknown signal(s) {', '.join(map(repr, unknown))}; known signals: "
                          + ", ".join(sorted(SPECS)))


class MonitorRegistry:
    """Monitors by (stream, model version).

    Parameters
    ----------
    settings : MonitorSettings
        Settings of every monitor this registry creates.
    references : mapping
        ``StreamMonitor.reference_state()``-shaped calibrated references by
        (stream, model version), already checked against ``settings``
        (``processors.bundles.load_bundles``).
    health : CameraHealth, optional
        The streams' camera health; every monitor shares its stream's record
        with it (``CameraHealth.link``), so the record is checkpointed and restored
        with the monitor.
    deferred : bool
        Every monitor leaves its calibrations as requests
        (``StreamMonitor.defer_calibration``), for a pool to compute
        (``processors.calibration_pool``). False: inline, as replay.
    """

    def __init__(
        self,
        settings: MonitorSettings | None = None,
        references: Mapping[StreamKey, dict[str, Any]] | None = None,
        health: CameraHealth | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        self.deferred = deferred
        self.settings = settings or MonitorSettings()
        check_holds(self.settings)
        self.health = health if health is not None else CameraHealth()
        self.monitors: dict[StreamKey, StreamMonitor] = {}
        self.references: dict[StreamKey, dict[str, Any]] = dict(references or {})
        # Evicted monitors (``evict``): compressed checkpoints, ~10x smaller
        # than a live monitor; brought back by the stream's next event.
        # (its input positions, the checkpoint): see ``StreamMonitor.applied``.
        self.evicted: dict[StreamKey, tuple[dict[str, int], bytes]] = {}

    def evict(self, key: StreamKey) -> None:
        """Keep the monitor of ``key`` as a compressed checkpoint instead of live.

        >>> reg = MonitorRegistry()
        >>> m = reg.get("cam", "v1"); m.events_seen = 3
        >>> reg.evict(("cam", "v1")); list(reg.monitors), reg.get("cam", "v1").events_seen
        ([], 3)
        """
        mon = self.monitors.pop(key)
        self.evicted[key] = (dict(mon.positions),
                             zlib.compress(json.dumps(mon.state()).encode(), 1))

    def drop(self, key: StreamKey) -> None:
        """Forget a stream's monitor, live or evicted (its stream moved to another worker)."""
        self.monitors.pop(key, None)
        self.evicted.pop(key, None)

    def _load(self, key: StreamKey) -> StreamMonitor | None:
        packed = self.evicted.pop(key, None)
        if packed is None:
            return None
        mon = self.monitors[key] = StreamMonitor.from_state(
            json.loads(zlib.decompress(packed[1])))
        mon.defer_calibration(self.deferred)
        self.health.link(mon)
        return mon

    def get(self, stream_id: str, model_version: str) -> StreamMonitor:
        key = (stream_id, model_version)
        mon = self.monitors.get(key) or self._load(key)
        if mon is None:
            mon = self.monitors[key] = (
                StreamMonitor.from_reference(stream_id, model_version, self.references[key],
                                             self.settings)
                if key in self.references
                else StreamMonitor(stream_id, model_version, self.settings))
            mon.defer_calibration(self.deferred)
        if mon.camera is None:
            self.health.link(mon)
        return mon

    def restore(self, state: StreamState) -> StreamMonitor:
        """Install a monitor from a snapshot (worker start-up / rebalance)."""
        self.evicted.pop((state.stream_id, state.model_version), None)
        mon = self.monitors[(state.stream_id, state.model_version)] = StreamMonitor.from_state(
            state.monitor
        )
        mon.defer_calibration(self.deferred)
        self.health.link(mon)
        return mon

    def existing(self, stream_id: str, model_version: str) -> StreamMonitor | None:
        """The monitor of this stream, live or evicted (brought back), or None; never creates."""
        return self.monitors.get((stream_id, model_version)) or self._load(
            (stream_id, model_version))

    def applied(self, stream_id: str, model_version: str, position: Positions) -> bool:
        """True when the monitor of this stream already applied the event at ``position``.

        Never creates a monitor.
        """
        mon = self.existing(stream_id, model_version)
        return mon is not None and mon.applied(position)

    def observe(
        self, event: MonitorEvent, position: Positions = None
    ) -> tuple[StreamMonitor, list[Alert]]:
        """Apply ``event`` to its stream's monitor (created on first sight).

        ``position`` is recorded in the monitor's checkpoint (see
        ``StreamMonitor.applied``); callers that may read an event twice ask
        ``applied`` first.
        """
        key = (event.stream_id, event.model_version)
        new = key not in self.monitors and key not in self.evicted
        mon = self.get(*key)
        alerts = mon.observe(event, position)
        if new:
            # A stream's events all share one partition, so every version of
            # it this stream has shown is here: say when a new one appears.
            others = sorted(v for s, v in [*self.monitors, *self.evicted]
                            if s == key[0] and v != key[1])
            if others:
                alerts.insert(0, mon.version_notice(others, event))
        return mon, alerts
