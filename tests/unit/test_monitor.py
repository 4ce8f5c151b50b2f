"""The per-stream monitor on seeded, correlated streams with known change points."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.monitor import QUALITY_METRICS, StreamMonitor, alert_id
from schemas.events import Embedding, Label, Prediction

DIM = 32
SETTINGS = MonitorSettings(reference_size=200, cooldown=100)


def camera_like(n: int, *, seed: int, shift_at: int | None = None, dark: float = 40.0):
    """Embeddings + quality with AR(1) ρ≈0.85 wander; brightness drops at ``shift_at``."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=DIM) + 3.0
    ar = np.zeros(len(QUALITY_METRICS))
    emb = np.zeros(DIM)
    rho = 0.85
    for i in range(n):
        ar = rho * ar + rng.normal(size=ar.shape) * np.sqrt(1 - rho**2)
        emb = rho * emb + rng.normal(size=DIM) * 0.2
        quality = {name: 50.0 + 5.0 * ar[j] for j, name in enumerate(QUALITY_METRICS)}
        if shift_at is not None and i >= shift_at:
            quality["brightness"] -= dark
        yield Embedding(
            event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
            frame_index=i, vector=(base + emb).tolist(), quality=quality,
        )


def run(monitor: StreamMonitor, events) -> list:
    return [a for e in events for a in monitor.observe(e)]


def test_sudden_darkening_is_detected_after_onset_and_explained():
    alerts = run(StreamMonitor("cam", "v1", SETTINGS), camera_like(1400, seed=3, shift_at=1000))
    dark = [a for a in alerts if a.signal == "quality.brightness"]
    assert dark, [a.message for a in alerts]
    first = dark[0]
    assert 1000 <= first.detected_frame_index <= 1100
    assert first.observed < first.expected
    assert first.change_frame_index is not None and 950 <= first.change_frame_index <= 1010
    assert first.alert_id == alert_id("cam", "v1", first.signal, first.detector,
                                      first.detected_event_id)
    assert "fell" in first.message and "since frame" in first.message
    assert len(dark) == 1, "one change must yield one alert, not a storm"


def test_checkpoint_round_trip_continues_exactly():
    events = list(camera_like(1400, seed=5, shift_at=1000))
    original = StreamMonitor("cam", "v1", SETTINGS)
    run(original, events[:700])
    restored = StreamMonitor.from_state(
        json.loads(original.snapshot().model_dump_json())["monitor"]
    )
    tail_a = run(original, events[700:])
    tail_b = run(restored, events[700:])
    assert [a.model_dump(exclude={"ts"}) for a in tail_a] == [
        a.model_dump(exclude={"ts"}) for a in tail_b
    ]
    assert tail_a, "the shift after the checkpoint must be detected by both"
    assert json.dumps(original.state(), allow_nan=False) == json.dumps(
        restored.state(), allow_nan=False
    )


def test_state_size_is_bounded():
    monitor = StreamMonitor("cam", "v1", SETTINGS)
    events = camera_like(2600, seed=7)
    sizes = []
    for i, e in enumerate(events):
        monitor.observe(e)
        if i in (1500, 2599):
            sizes.append(len(json.dumps(monitor.state())))
    assert sizes[1] <= sizes[0] * 1.1


def test_embedding_of_the_wrong_length_is_refused():
    monitor = StreamMonitor("cam", "v1", SETTINGS)
    events = list(camera_like(7, seed=1))
    for e in events[:5]:  # the first vectors vote on the dimension (edge_quorum)
        monitor.observe(e)
    bad = events[5].model_copy(update={"vector": [1.0] * (DIM + 1)})
    with pytest.raises(InvalidEvent) as info:
        monitor.observe(bad)
    assert info.value.reason == "embedding_dimension"
    monitor.observe(events[6])  # and the stream goes on


def test_events_of_another_stream_are_refused():
    monitor = StreamMonitor("cam", "v1", SETTINGS)
    other = next(camera_like(1, seed=1)).model_copy(update={"stream_id": "cam-2"})
    with pytest.raises(InvalidEvent):
        monitor.observe(other)


def test_labels_join_predictions_and_a_jump_in_errors_alerts():
    monitor = StreamMonitor("cam", "v1", MonitorSettings(reference_size=100, cooldown=50))
    rng = np.random.default_rng(11)
    alerts = []
    for i in range(1200):
        p = Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1", top_class="cat",
                       confidence=float(np.clip(0.9 + 0.02 * rng.normal(), 0, 1)), frame_index=i)
        alerts += monitor.observe(p)
        wrong = rng.random() < (0.05 if i < 800 else 0.5)
        lab = Label(event_id=f"l{i}", stream_id="cam", model_version="v1",
                    target_event_id=f"p{i}", true_class="dog" if wrong else "cat")
        alerts += monitor.observe(lab)
    errors = [a for a in alerts if a.signal == "performance.error"]
    assert errors and errors[0].observed > errors[0].expected
    assert monitor.labels_unmatched == 0
    # A label whose prediction is unknown waits for it (it may have overtaken
    # it: processors/monitor/label_order.py) until a prediction stamped more
    # than a minute after the label arrives, then counts as unmatched.
    lx = Label(event_id="lx", stream_id="cam", model_version="v1",
               target_event_id="unknown", true_class="cat")
    monitor.observe(lx)
    assert (monitor.labels_unmatched, len(monitor.pending_labels)) == (0, 1)
    for i, late_s in enumerate([1, 30, 61]):
        monitor.observe(Prediction(event_id=f"q{i}", stream_id="cam", model_version="v1",
                                   top_class="cat", confidence=0.9,
                                   ts=lx.ts + timedelta(seconds=late_s)))
        assert len(monitor.pending_labels) == (0 if late_s > 60 else 1)
    assert (monitor.labels_unmatched, len(monitor.pending_labels)) == (1, 0)


def test_label_join_window_is_bounded():
    monitor = StreamMonitor("cam", "v1", MonitorSettings(label_join_window=10))
    for i in range(50):
        monitor.observe(Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1",
                                   top_class="cat", confidence=0.9))
    assert len(monitor.state()["predictions"]) == 10


def test_known_embedding_dim_rejects_a_malformed_first_vector() -> None:
    """A wrong-length vector arriving first must not fix the stream's dimension."""
    mon = StreamMonitor("cam", "v1", MonitorSettings(embedding_dim=4))
    bad = Embedding(event_id="bad", stream_id="cam", model_version="v1", frame_id="f",
                    vector=[0.1, 0.2, 0.3])
    with pytest.raises(InvalidEvent) as info:
        mon.observe(bad)
    assert info.value.reason == "embedding_dimension"
    good = Embedding(event_id="ok", stream_id="cam", model_version="v1", frame_id="f",
                     vector=[0.1, 0.2, 0.3, 0.4])
    assert mon.observe(good) == []
