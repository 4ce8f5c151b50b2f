"""``MIN_DURATION_BY_SIGNAL``: one signal's hold shortened, every other signal's kept.

Model-output signals never take the calm-tiles fast path, so a deployment
whose outputs have no transients may shorten their hold alone; the frames'
hold, which keeps passers-by quiet, must not move with it.
"""

from __future__ import annotations

import pytest

from bench.bench_outputs import ONSET, predictions
from bench.simulated_classifier import classifier_outputs
from driftline.errors import ConfigError
from driftline.settings import MonitorSettings
from processors.monitor import MonitorRegistry, StreamMonitor
from tests.unit.monitor.test_global_fast_path import camera


def output_alerts(**holds: float) -> list[tuple[str, int, int]]:
    # Camera 22's strong confidence drop (tests/unit/bench/test_outputs_hold.py).
    out = classifier_outputs(22, ONSET + 600, "confidence_drop_strong", ONSET)
    mon = StreamMonitor("cam", "v1", MonitorSettings(min_duration_by_signal=holds))
    return [(a.signal, a.change_frame_index or 0, a.detected_frame_index or 0)
            for e in predictions(out) for a in mon.observe(e)]


def test_a_shorter_hold_for_an_output_signal_moves_its_alert_alone() -> None:
    # Default 45 s: 449 predictions after the change point; 0 s for the
    # confidence: 51 after it, as with MIN_DURATION 0 for every signal.
    assert output_alerts() == [("output.confidence", 3081, 3530)]
    assert output_alerts(**{"output.confidence": 0.0}) == [("output.confidence", 3081, 3132)]
    assert output_alerts(**{"output.confidence": 15.0}) == [("output.confidence", 3081, 3230)]
    # Another signal's hold leaves this one's at the default.
    assert output_alerts(**{"output.entropy": 0.0, "quality.brightness": 0.0}) \
        == [("output.confidence", 3081, 3530)]


def test_frames_keep_their_hold_when_the_outputs_are_shortened() -> None:
    passers = ((400, 100), (750, 150), (1100, 180))  # 10-18 s in view, min_duration 20 s

    def alerts(holds: dict[str, float]) -> list[tuple[str, int | None]]:
        mon = StreamMonitor("cam", "v1", MonitorSettings(cooldown=100, min_duration=20,
                                                         min_duration_by_signal=holds))
        return [(a.signal, a.change_frame_index) for e in camera(1320, seed=4, passers=passers)
                for a in mon.observe(e)]

    outputs = {"output.confidence": 0.0, "output.entropy": 0.0, "output.new_classes": 0.0}
    assert alerts(outputs) == []
    # What the frames' hold protects: at 0 s the passers-by alert.
    shortened = alerts({"quality.brightness": 0.0})
    assert shortened and {s for s, _ in shortened} == {"quality.brightness"}


def test_a_misspelt_signal_fails_at_start_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"MIN_DURATION_BY_SIGNAL: unknown signal.*confidense"):
        MonitorRegistry(MonitorSettings(min_duration_by_signal={"output.confidense": 30.0}))
