"""Issue #11: a global change alerts within seconds, a local one only when it lasts.

Seeded streams of ``Embedding`` events at 10 frames/s whose quality carries the
4×4 tile values: a change of every tile at once (blur, haze, exposure) takes
the fast path (``global_min_duration``); a passer-by darkens a few tiles, then
others, and keeps the full ``min_duration``, as does an occluder that stays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.settings import MonitorSettings
from processors.image_quality import TILE_KEYS, TILES
from processors.monitor import QUALITY_METRICS, StreamMonitor
from schemas.events import Embedding

FPS = 10.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_TILES = TILES * TILES


def camera(n: int, *, seed: int, passers: tuple[tuple[int, int], ...] = (),
           global_at: int | None = None, stay_at: int | None = None,
           cast_at: int | None = None):
    """AR(1) whole-frame and tile values; passers-by cross the tiles column by column."""
    rng = np.random.default_rng(seed)
    base = np.r_[rng.uniform(60, 180, N_TILES), rng.uniform(15, 40, N_TILES),
                 rng.uniform(3, 6, N_TILES)]
    ar = np.zeros(len(QUALITY_METRICS))
    tiles = np.zeros(base.size)
    rho = 0.85
    # A colour cast moves each tile's luma its own way (a red tile brightens, a
    # blue one darkens): up to ~2 tile tolerances against the median tile.
    uneven = np.exp(np.random.default_rng(seed + 100).uniform(-0.2, 0.2, N_TILES))
    for i in range(n):
        ar = rho * ar + rng.normal(size=ar.shape) * np.sqrt(1 - rho**2)
        tiles = rho * tiles + rng.normal(size=tiles.shape) * np.sqrt(1 - rho**2)
        q = {name: 50.0 + 5.0 * ar[j] for j, name in enumerate(QUALITY_METRICS)}
        t = base * (1 + 0.01 * tiles)
        for start, frames in passers:
            if start <= i < start + frames:
                col = (i - start) * TILES // frames  # walks left to right
                t[col:N_TILES:TILES] *= 0.4
                q["brightness"] -= 30.0
        if stay_at is not None and i >= stay_at:
            t[0:N_TILES:TILES] *= 0.4
            q["brightness"] -= 30.0
        if global_at is not None and i >= global_at:
            t[: 2 * N_TILES] *= 0.5  # every tile darker and flatter (haze, a lost light)
            q["brightness"] -= 30.0
        if cast_at is not None and i >= cast_at:
            t[:N_TILES] *= uneven
            q["warmth"] += 60.0
        q.update(zip(TILE_KEYS, t.tolist(), strict=True))
        yield Embedding(event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                        frame_index=i, vector=[1.0] * 8, quality=q,
                        ts=T0 + timedelta(seconds=i / FPS))


def brightness_alerts(events, signal: str = "quality.brightness",
                      **settings) -> list[tuple[int, int]]:
    mon = StreamMonitor("cam", "v1", MonitorSettings(cooldown=100, min_duration=20, **settings))
    return [(a.change_frame_index, a.detected_frame_index) for e in events
            for a in mon.observe(e) if a.signal == signal]


def test_a_global_change_alerts_within_the_fast_window():
    # Pinned: the change point, then 2 s (20 events) of calm frames after it.
    assert brightness_alerts(camera(560, seed=3, global_at=500)) == [(500, 519)]


def test_an_uneven_global_change_takes_the_fast_path():
    # Pinned: a colour cast moves every tile's luma by up to ~2 tolerances, each
    # its own way -- spread, not local (LOCAL_LEVEL) -- so 2 s, not 20.
    assert brightness_alerts(camera(560, seed=3, cast_at=500),
                             signal="quality.warmth") == [(500, 519)]


def test_without_the_fast_path_it_waits_min_duration():
    # 20 s = 200 events from the change point.
    assert brightness_alerts(camera(720, seed=3, global_at=500),
                             global_min_duration=0) == [(500, 699)]


def test_passers_by_crossing_the_tiles_raise_no_alert():
    # 10, 15 and 18 s in view (min_duration 20 s), each crossing four tile columns.
    passers = ((400, 100), (750, 150), (1100, 180))
    mon = StreamMonitor("cam", "v1", MonitorSettings(cooldown=100, min_duration=20))
    alerts = [a for e in camera(1320, seed=4, passers=passers) for a in mon.observe(e)]
    assert alerts == [], [(a.signal, a.detected_frame_index) for a in alerts]
    # The whole-frame detector fired on each and was held: local, so not fast.
    assert mon.signals["quality.brightness"].transients >= 3


def test_a_local_change_that_stays_alerts_after_min_duration():
    # Pinned: the occluder's column of tiles stays dark; the slow path's 200 events.
    assert brightness_alerts(camera(720, seed=5, stay_at=500)) == [(500, 699)]
