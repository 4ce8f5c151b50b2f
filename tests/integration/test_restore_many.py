"""A worker restores every stream from the state topic: 1,000 streams, none left out.

The restore used to stop at a 20 s deadline (1,000 of 1,020 streams came back,
silently) and trusted the high watermark, which the embedded broker can
under-report after a batched produce. Here 1,000 snapshots are produced in
one batch to a real broker and read back by the worker's own reader.
"""

from __future__ import annotations

import copy
import time

import pytest

from driftline.settings import MonitorSettings, Settings
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.stream_app import load_snapshots
from producers.publisher import Publisher
from schemas.events import Prediction, StreamState
from schemas.wire import encode

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = 1000


def test_a_thousand_streams_restore_completely(settings: Settings):
    mon = StreamMonitor("cam-0000", "v1", MonitorSettings(reference_size=50))
    for i in range(60):
        mon.observe(Prediction(event_id=f"p{i}", stream_id="cam-0000", model_version="v1",
                               top_class="cat",
                               confidence=0.8 + 0.001 * (i % 7)))
    template = mon.snapshot().model_dump(mode="json")
    with Publisher(settings.bootstrap_servers) as pub:
        for n in range(STREAMS):
            sid = f"cam-{n:04d}"
            snap = copy.deepcopy(template)
            snap["stream_id"] = snap["monitor"]["stream_id"] = sid
            snap["events_seen"] = snap["monitor"]["events_seen"] = 60 + n
            state = StreamState.model_validate(snap)
            pub.publish_raw(settings.topics.state, f"{sid}|v1".encode(), encode(state))
    started = time.monotonic()
    snaps = load_snapshots(settings)
    took = time.monotonic() - started
    assert len(snaps) == STREAMS, f"{len(snaps)} of {STREAMS} restored in {took:.1f}s"
    registry = MonitorRegistry(MonitorSettings(reference_size=50))
    for state in snaps.values():
        registry.restore(state)
    assert len(registry.monitors) == STREAMS
    assert {m.events_seen for m in registry.monitors.values()} == set(range(60, 60 + STREAMS))
    restored = registry.monitors[("cam-0999", "v1")]
    assert restored.signals["output.confidence"].detector is not None
