"""A reference that contains a change warns; signals a stream never feeds are ``not_seen``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from driftline.settings import MonitorSettings
from processors.monitor import StreamMonitor
from processors.monitor.warmup_checks import DETECTOR
from schemas.events import Embedding

SETTINGS = MonitorSettings(reference_size=200, cooldown=100)
DIM = 16


def camera_like(n: int, *, seed: int, shift_at: int | None = None, dark: float = 0.0,
                prefix: str = "e") -> Iterator[Embedding]:
    """Brightness and contrast with an AR(1) wander (rho 0.85, sd 5); brightness steps down.

    Two quality signals only: each calibration costs seconds (its detector's
    simulations), and these two are what the test needs.
    """
    rng = np.random.default_rng(seed)
    ar = np.zeros(2)
    for i in range(n):
        ar = 0.85 * ar + rng.normal(size=2) * np.sqrt(1 - 0.85**2)
        bright = 120.0 + 5.0 * ar[0] - (dark if shift_at is not None and i >= shift_at else 0)
        yield Embedding(event_id=f"{prefix}{i}", stream_id="cam", model_version="v1",
                        frame_id=f"f{i}", frame_index=i, vector=rng.normal(size=DIM).tolist(),
                        quality={"brightness": bright, "contrast": 50.0 + 5.0 * ar[1]})


def test_a_change_inside_the_warm_up_warns_and_unfed_signals_are_not_seen():
    mon = StreamMonitor("cam", "v1", SETTINGS)
    assert mon.snapshot().signals["edge.distance"].status == "warming_up"  # too early to say
    # Brightness steps by 18 spreads (the AR(1) wander's) at event 120 of the
    # 200-event warm-up; the other quality signals stay clean and warn nothing.
    alerts = [a for e in camera_like(210, seed=3, shift_at=120, dark=90.0)
              for a in mon.observe(e)]
    (warn,) = [a for a in alerts if a.detector == DETECTOR]
    assert warn.signal == "quality.brightness" and warn.severity == "warning"
    assert 110 <= warn.change_index <= 130, warn.message
    assert "re-reference" in warn.message
    signals = mon.snapshot().signals
    assert signals["quality.brightness"].status == "suspect_reference"
    assert signals["quality.brightness"].last_alert_id == warn.alert_id
    assert signals["quality.contrast"].status == "ok"
    # Embeddings only: no edge vectors, predictions or labels will come.
    for name in ("edge.distance", "output.confidence", "performance.error"):
        assert signals[name].status == "not_seen", name
    # A re-reference on the stable scene clears the suspicion.
    mon.rereference(["quality.brightness"])
    for e in camera_like(200, seed=4, prefix="r"):
        mon.observe(e)
    assert mon.snapshot().signals["quality.brightness"].status == "ok"
