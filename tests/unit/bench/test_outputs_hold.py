"""``bench_outputs --min-duration``: the shortened hold reaches the monitor and moves its delay."""

from __future__ import annotations

from bench.bench_outputs import ONSET, monitor_alerts
from bench.simulated_classifier import classifier_outputs


def test_the_hold_set_by_the_bench_reaches_the_monitor() -> None:
    # Camera 22's strong confidence drop on a 3,600-prediction stream (other
    # draws than the bench's 9,000): one change point, 3,081; without the hold
    # the alert comes 51 predictions after it, with the default 45 s (450
    # predictions at 10/s) 449 after it -- the level test at the hold's end.
    out = classifier_outputs(22, ONSET + 600, "confidence_drop_strong", ONSET)
    assert monitor_alerts(out, 1.0, min_duration=0.0) == [("output.confidence", 3081, 3132)]
    assert monitor_alerts(out, 1.0) == [("output.confidence", 3081, 3530)]
