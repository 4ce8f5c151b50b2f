"""Issue #11: ``quality.vignetting``, the corners' luma against the centre's.

Seeded synthetic tile statistics at 10 frames/s (no rendering: cheap); the
rendered-camera case is ``test_tiles`` (chelsea, vignetting).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.settings import MonitorSettings
from processors.image_quality import TILE_KEYS, TILES
from processors.monitor import StreamMonitor
from processors.monitor.features import CORNER_TILES
from schemas.events import Embedding

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_TILES = TILES * TILES


def vignetting_alerts(darken: dict[int, float], start: int, stop: int,
                      n: int = 1600) -> list[tuple[int, int, str]]:
    """Alerts of ``quality.vignetting`` when tiles ``darken`` (tile: factor) in [start, stop)."""
    rng = np.random.default_rng(7)
    base = rng.uniform(60.0, 180.0, N_TILES)
    mon = StreamMonitor("cam", "v1", MonitorSettings())
    out = []
    for i in range(n):
        luma = base * (1.0 + 0.02 * rng.standard_normal(N_TILES))
        if start <= i < stop:
            for t, f in darken.items():
                luma[t] *= f
        vals = [*luma, *(20.0 + rng.standard_normal(N_TILES)),
                *(3.0 + 0.05 * rng.standard_normal(N_TILES))]
        e = Embedding(event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                      frame_index=i, vector=[1.0] * 8, quality=dict(zip(TILE_KEYS, vals,
                                                                        strict=True)),
                      ts=T0 + timedelta(seconds=i / 10))
        out += [(a.change_frame_index, a.detected_frame_index, a.message)
                for a in mon.observe(e) if a.signal == "quality.vignetting"]
    return out


def test_four_dark_corners_fire_vignetting_and_the_alert_names_them():
    alerts = vignetting_alerts({t: 0.6 for t in CORNER_TILES}, 1000, 1600)
    # Pinned: the persistence rule holds it MIN_DURATION (the change is not global).
    assert [(c, d) for c, d, _ in alerts] == [(1000, 1449)]
    assert "dark corners: " in alerts[0][2] and "top left" in alerts[0][2]


def test_a_passer_by_lingering_in_one_corner_does_not_fire_it():
    # Darker than the vignette, and for 60 s: longer than MIN_DURATION.
    assert vignetting_alerts({0: 0.3, 1: 0.3, 4: 0.3}, 1000, 1600) == []
