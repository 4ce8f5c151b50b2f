"""The per-stream monitor, split along its seams (no Kafka anywhere below here).

- ``catalogue``: every signal, its extractor, detector kind, tolerance, seed;
- ``features``: the memory some signals need (embedding references, class
  ids, the label join);
- ``alerts``: deterministic alert ids and alert text;
- ``controls``: operator controls in force and open alerts (their lifecycle);
- ``stream_monitor``: ``StreamMonitor``, the observe loop, re-reference and
  checkpoint;
- ``registry``: ``MonitorRegistry``, monitors by (stream, model version).
"""

from processors.monitor.alerts import alert_id
from processors.monitor.catalogue import (
    EMBEDDING_SOURCES,
    QUALITY_METRICS,
    RETRAIN_SIGNAL,
    SIGNALS,
    SPECS,
    VERSION_SIGNAL,
    MonitorEvent,
    SignalSpec,
    scores_entropy,
)
from processors.monitor.registry import MonitorRegistry, StreamKey
from processors.monitor.stream_monitor import MonitorState, StreamMonitor

__all__ = [
    "EMBEDDING_SOURCES",
    "QUALITY_METRICS",
    "RETRAIN_SIGNAL",
    "SIGNALS",
    "SPECS",
    "VERSION_SIGNAL",
    "MonitorEvent",
    "MonitorRegistry",
    "MonitorState",
    "SignalSpec",
    "StreamKey",
    "StreamMonitor",
    "alert_id",
    "scores_entropy",
]
