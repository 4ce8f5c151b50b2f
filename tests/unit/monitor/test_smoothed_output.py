"""Issue #11: the model's confidence is watched through its EWMA, so a small drop is caught.

A classifier's per-frame confidence varies by ~0.09 around its level: a
tolerance of 2.5 of those (0.2) let a drop of 0.1 in the mean go unnoticed
for ever. ``output.confidence`` now watches an EWMA of half-life 150
predictions (``SignalSpec.smooth``, ``ScalarSignal.smooth``): one float (and
a count) of state.

The stream: 10 predictions/s (so ``MIN_DURATION`` holds a detection for 450),
confidence a logistic of a level, a 5-s lighting swing and per-frame noise, as
``bench/simulated_classifier.py`` makes it; the logit drops by 0.8 at 3,000
(mean confidence -0.106).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.settings import MonitorSettings
from processors import calibration
from processors.monitor import StreamMonitor
from processors.monitor.catalogue import SPECS
from processors.signal_tracker import ScalarSignal, ScalarSignalState
from schemas.events import Prediction

ONSET = 3000
SIGNAL = "output.confidence"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def predictions(n: int = 4000, *, seed: int = 8, drop: float = 0.8) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    swing = 0.3 * calibration.ar1_stream(rng, n, rho=float(np.exp(-1 / 50)))
    logit = 1.6 + swing + 0.5 * rng.normal(size=n)
    logit[ONSET:] -= drop
    conf = np.clip(1.0 / (1.0 + np.exp(-logit)), 0.35, 0.999)
    return [Prediction.model_construct(
        event_id=f"p{i}", stream_id="cam", model_version="v1", ts=T0 + timedelta(seconds=i / 10),
        frame_id=f"f{i}", frame_index=i, top_class="car", confidence=float(c),
        scores={"car": float(c), "bus": float(1 - c)}, boxes=None, embedding=None)
        for i, c in enumerate(conf)]


def alerts(events: list[Prediction], mon: StreamMonitor | None = None) -> list[tuple[int, str]]:
    mon = mon or StreamMonitor("cam", "v1", MonitorSettings())
    return [(a.detected_index, a.signal) for e in events for a in mon.observe(e)
            if a.signal.startswith("output.")]


@pytest.fixture(scope="module")
def stream() -> list[Prediction]:
    return predictions()


def test_the_catalogue_smooths_the_confidence_only():
    assert {s.name: s.smooth for s in SPECS.values() if s.smooth} == {"output.confidence": 150.0}


def test_a_small_confidence_drop_is_caught_through_the_average(stream):
    conf = np.array([e.confidence for e in stream])
    assert 0.10 < conf[:ONSET].mean() - conf[ONSET:].mean() < 0.11
    # Pinned: 971 predictions after the onset (the average converges, the
    # tracking baseline follows part of it, the slow twin catches it and
    # MIN_DURATION holds it 450 from the estimated change point); nothing before.
    assert alerts(stream) == [(3971, SIGNAL)]


def test_the_raw_signal_misses_it(stream):
    mon = StreamMonitor("cam", "v1", MonitorSettings())
    mon.signals[SIGNAL].adopt_smoothing(0.0)  # the per-frame signal of before
    assert alerts(stream, mon) == []


def test_a_clean_stream_stays_quiet():
    assert alerts(predictions(6000, seed=6, drop=0.0)) == []


def test_the_average_is_checkpointed_and_continues_exactly(stream):
    mon = StreamMonitor("cam", "v1", MonitorSettings())
    assert alerts(stream[:3200], mon) == []
    state = json.loads(json.dumps(mon.state()))
    sig = state["signals"][SIGNAL]
    assert sig["smooth"] == 150.0 and sig["smoothed_n"] == 3200
    assert sig["smoothed"] == mon.signals[SIGNAL].smoothed
    assert alerts(stream[3200:], StreamMonitor.from_state(state)) == [(3971, SIGNAL)]
    # Two numbers per smoothed signal: the checkpoint does not grow materially.
    raw = ScalarSignal.from_state(ScalarSignalState.model_validate(
        {**sig, "smooth": 0.0, "smoothed": None, "smoothed_n": 0}))
    assert len(json.dumps(sig)) - len(json.dumps(raw.state())) < 80


def test_a_checkpoint_from_before_smoothing_loads_and_re_references_the_signal(stream):
    mon = StreamMonitor("cam", "v1", MonitorSettings())
    mon.signals[SIGNAL].adopt_smoothing(0.0)
    alerts(stream[:2500], mon)
    state = json.loads(json.dumps(mon.state()))
    for sig in state["signals"].values():  # what a build without smoothing wrote
        for key in ("smooth", "smoothed", "smoothed_n"):
            sig.pop(key)
    assert ScalarSignalState.model_validate(state["signals"][SIGNAL]).smooth == 0.0
    back = StreamMonitor.from_state(state)
    conf = back.signals[SIGNAL]
    # Calibrated on raw values: it builds a new reference from the averages.
    assert (conf.smooth, conf.status, conf.detector) == (150.0, "warming_up", None)
    assert back.signals["output.class_mix"].detector is not None
    assert back.signals["output.class_mix"].state() == mon.signals["output.class_mix"].state()
    alerts(stream[2500:2800], back)
    assert conf.status == "ok" and conf.detector is not None


def test_a_bundle_calibrated_on_raw_values_is_refused():
    rng = np.random.default_rng(0)
    raw = ScalarSignal(SIGNAL, "cusum", ert=1e6, reference_size=100, cooldown=10, seed=15,
                       tolerance=(0.0, 0.05))
    for i in range(100):
        raw.update(float(0.8 + 0.05 * rng.normal()), i)
    ref = raw.reference_state()
    assert ref is not None and ref["smooth"] == 0.0
    smoothed = ScalarSignal(SIGNAL, "cusum", ert=1e6, reference_size=100, cooldown=10,
                            seed=15, tolerance=(0.0, 0.05), smooth=75.0)
    old = {k: v for k, v in ref.items() if k != "smooth"}  # written before smoothing existed
    for bundle in (ref, old):
        with pytest.raises(ValueError, match="smooth"):
            smoothed.load_reference(bundle)


def test_the_average_s_unsettled_start_does_not_widen_the_tolerance():
    # The first values of the average are means of a few: spread enough that
    # 2.5 of their standard deviation would exceed the 0.07 floor.
    rng = np.random.default_rng(26)
    s = ScalarSignal(SIGNAL, "cusum", ert=1e8, reference_size=200, cooldown=10, seed=15,
                     tolerance=(0.0, 0.07), track=1.0 - 0.5 ** (1 / 300), smooth=150.0)
    averages = []
    for i, v in enumerate(0.78 + 0.15 * rng.normal(size=200)):
        s.update(float(v), i)
        averages.append(s.smoothed)
    assert 2.5 * np.std(averages) > 0.09 and 2.5 * np.std(averages[50:]) < 0.02
    assert s._unsettled(200) == 50 and s.detector is not None and s.detector.scale == 0.07
