"""The signal catalogue is the one place a signal is defined."""

from __future__ import annotations

from pathlib import Path

from driftline.settings import MonitorSettings
from processors.detector_registry import make_detector
from processors.monitor import SIGNALS, SPECS, StreamMonitor
from processors.monitor.catalogue import CALIBRATED, EXTRACTORS, readme_table
from schemas.events import Embedding, FrameError, Label, Prediction

README = Path(__file__).resolve().parents[3] / "README.md"


def test_names_and_seeds_are_unique():
    assert len(SPECS) == len(SIGNALS)
    seeds = [s.seed for s in SIGNALS]
    assert len(set(seeds)) == len(seeds), "a calibration seed is never shared or reused"


def test_seeds_pinned():
    # Thresholds, detection indices and alert ids depend on these: change none.
    assert {s.name: s.seed for s in SIGNALS} == {
        "embedding.distance": 0, "embedding.residual": 1, "edge.distance": 2,
        "edge.residual": 3, "embedding.outlier": 4, "edge.outlier": 5,
        "quality.brightness": 6, "quality.contrast": 7, "quality.sharpness": 8,
        "quality.saturation": 9, "quality.colourfulness": 10, "quality.noise": 11,
        "quality.warmth": 12, "quality.tint": 13, "quality.resolution": 14,
        "output.confidence": 15, "output.entropy": 16, "output.class_mix": 17,
        "output.boxes": 18, "performance.error": 19, "quality.undecodable": 20,
        "quality.compression": 21, "output.new_classes": 22,
        "quality.tile_brightness": 24, "quality.tile_sharpness": 25, "quality.frozen": 26,
            "quality.vignetting": 27,
    }


def test_every_kind_is_a_registered_detector_kind():
    import numpy as np

    ref = np.random.default_rng(0).normal(size=200)
    for spec in SIGNALS:
        values = np.abs(ref).round() if spec.kind in ("chi2_mix", "mix_cusum") else ref
        det = make_detector(spec.kind, values, ert=10_000, seed=spec.seed,
                            tolerance=spec.tolerance[1] if spec.tolerance else None)
        assert det.threshold == det.threshold or spec.kind == "adwin", spec.name


def test_every_signal_is_carried_by_some_event():
    carried = {s.name for specs in EXTRACTORS.values() for s in specs}
    assert carried == set(SPECS)
    assert {t for s in SIGNALS for t in s.events} <= {Embedding, FrameError, Prediction, Label}


def test_the_monitor_watches_the_catalogue_and_splits_the_budget_over_calibrated_signals():
    mon = StreamMonitor("cam", "v1", MonitorSettings(ert=1000))
    assert list(mon.signals) == [s.name for s in SIGNALS]
    assert {s.ert for s in mon.signals.values()} == {1000 * len(CALIBRATED)}
    assert {n: s.seed for n, s in mon.signals.items()} == {s.name: s.seed for s in SIGNALS}


def test_readme_signal_table_is_generated_from_the_catalogue():
    assert readme_table() in README.read_text(), (
        "README's signal table is stale: run `python -m processors.monitor "
        "--write-readme`")


def test_the_worked_example_of_the_architecture_doc(monkeypatch):
    """docs/architecture.md's 'add a scalar signal' block, executed: the monitor watches it."""
    import processors.monitor.stream_monitor as sm

    doc = (README.parent / "docs" / "architecture.md").read_text()
    block = doc.split("<!-- worked example -->")[1].split("```python")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(block, "docs/architecture.md", "exec"), namespace)
    spec = namespace["ASPECT"]
    assert spec.name not in SPECS and spec.seed not in {s.seed for s in SIGNALS}
    signals = (*SIGNALS, spec)
    monkeypatch.setattr(sm, "SIGNALS", signals)
    monkeypatch.setattr(sm, "CALIBRATED", tuple(s.name for s in signals if s.calibrated))
    monkeypatch.setattr(sm, "EXTRACTORS", {
        t: tuple(s for s in signals if t in s.events)
        for t in (Embedding, FrameError, Prediction, Label)})

    mon = StreamMonitor("cam", "v1", MonitorSettings(reference_size=100))
    fired = []
    for i in range(500):
        height = 480 if i < 400 else 360  # 4:3 -> 16:9 at event 400
        e = Embedding(event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                      vector=[1.0, 0.0, float(i % 7)],
                      quality={"width": 640, "height": height, "brightness": 100.0 + i % 5})
        fired += [(i, a.signal) for a in mon.observe(e)]
    assert "quality.aspect" in mon.snapshot().signals
    aspect = [i for i, s in fired if s == "quality.aspect"]
    assert aspect and 400 <= aspect[0] < 415, fired
