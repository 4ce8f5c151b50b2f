"""Issue #11: spatially resolved image quality and a frozen feed, on seeded simulated cameras.

A fixed-mount camera (the simulated camera with a slow 0.1 px/frame wander) over
real photos, frames through ``image_quality`` at 10 frames/s; the embedding is a
constant stand-in (the embedding signals are not what these tests watch).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.settings import MonitorSettings
from processors.image_quality import image_quality
from processors.monitor import StreamMonitor
from processors.monitor.features import TileFeatures, relative_tiles
from producers.drift_injection import DriftSpec
from producers.simulated_camera import SimulatedCamera
from schemas.events import Embedding

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def quality_alerts(scene: str, seed: int, kind: str | None, n: int) -> list[tuple[str, int, int]]:
    drift = DriftSpec(kind, onset=1000) if kind else None
    cam = SimulatedCamera(scene, seed=seed, size=(320, 240), drift=drift, pan_speed=0.1)
    mon = StreamMonitor("cam", "v1", MonitorSettings())
    out = []
    for f in cam.frames(n):
        e = Embedding(event_id=f"e{f.index}", stream_id="cam", model_version="v1",
                      frame_id=f"f{f.index}", frame_index=f.index, vector=[1.0] * 8,
                      quality=image_quality(f.rgb), ts=T0 + timedelta(seconds=f.index / 10))
        out += [(a.signal, a.change_frame_index, a.detected_frame_index, a.message)
                for a in mon.observe(e) if a.signal.startswith("quality.")]
    return out


@pytest.mark.parametrize(("scene", "seed", "kind", "signal", "tile", "before"), [
    ("coffee", 1, "smudge", "quality.tile_sharpness", "column 0", []),
    # quality.vignetting (the corners against the centre) catches it first.
    ("chelsea", 2, "vignetting", "quality.tile_brightness", "row",
     [("quality.vignetting", 1000, 1019)]),
])
def test_a_local_lens_fault_is_caught_by_its_tile_and_named(scene, seed, kind, signal, tile,
                                                            before):
    alerts = quality_alerts(scene, seed, kind, 1500)
    assert [(s, c, d) for s, c, d, _ in alerts] == [*before, (signal, 1000, 1449)]
    assert "worst tile: " in alerts[-1][3] and tile in alerts[-1][3]


def test_a_frozen_feed_alerts():
    alerts = quality_alerts("coffee", 1, "frozen", 1500)
    frozen = [(s, c, d) for s, c, d, _ in alerts if s == "quality.frozen"]
    assert frozen and frozen[0][1] >= 1000 and frozen[0][2] <= 1000 + 460, alerts


def test_relative_tiles_cancel_a_global_change():
    rng = np.random.default_rng(0)
    vals = list(rng.uniform(20, 200, 16)) + list(rng.uniform(5, 50, 16)) + list(
        rng.uniform(1, 8, 16))
    darker = [v * 0.5 for v in vals[:16]] + vals[16:32] + [v - 1.0 for v in vals[32:]]
    a, b = relative_tiles(vals), relative_tiles(darker)
    assert np.abs(a[2] - b[2]).max() < 1e-9
    assert np.abs(a[0] - b[0]).max() < 0.05  # log1p: nearly gain-invariant


def test_tile_features_checkpoint_round_trip():
    t = TileFeatures(reference_size=3, track=0.01)
    rng = np.random.default_rng(1)
    qs = [{k: float(v) for k, v in zip(
        [f"tile_{m}_{r}{c}" for m in ("brightness", "contrast", "sharpness")
         for r in range(4) for c in range(4)], rng.uniform(1, 100, 48), strict=True)}
        for _ in range(6)]
    for q in qs[:4]:
        t.values(q)
    u = TileFeatures.from_state(t.state(), 3, 0.01)
    assert t.values(qs[4]) == u.values(qs[4]) and t.values(qs[4]) == u.values(qs[4])
    assert t.values(qs[4])["quality.frozen"] > 0  # the same frame again
