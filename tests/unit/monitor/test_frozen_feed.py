"""Issue #11: a frozen feed alerts after its own ``frozen_after_s``, a live static scene never.

Real frames (scikit-image's ``coffee``, 160x120) with fresh Gaussian sensor
noise each frame, JPEG-encoded (q85) and decoded, measured by
``image_quality`` at 10 frames/s; the embedding is a constant stand-in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from driftline.settings import MonitorSettings
from processors.image_quality import image_quality
from processors.monitor import StreamMonitor
from processors.monitor.features import TileFeatures
from schemas.events import Embedding

skimage_data = pytest.importorskip("skimage.data")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Short references keep the calibrations cheap: tiles fitted by frame 50, the
# signals calibrated by frame 100.
REF = 50
ONSET = 150


def _scene(gain: float) -> np.ndarray:
    rgb = cv2.resize(skimage_data.coffee(), (160, 120), interpolation=cv2.INTER_AREA)
    return rgb.astype(np.float32) * np.float32(gain)


def frame_qualities(n: int, *, seed: int, sigma: float, gain: float = 1.0,
                    frozen_at: int | None = None) -> list[dict[str, float]]:
    """Quality of ``n`` frames of a static scene with sensor noise ``sigma`` (grey levels)."""
    rng = np.random.default_rng(seed)
    scene = _scene(gain)
    out: list[dict[str, float]] = []
    for i in range(n):
        if frozen_at is not None and i > frozen_at:
            out.append(dict(out[-1]))  # the encoder repeats the last picture
            continue
        noisy = np.clip(scene + rng.normal(0.0, sigma, scene.shape), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", noisy[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
        out.append(image_quality(rgb, encoded_size=len(buf)))
    return out


def alerts(qualities: list[dict[str, float]], **settings) -> list[tuple[str, int, int]]:
    mon = StreamMonitor("cam", "v1", MonitorSettings(reference_size=REF, **settings))
    return [(a.signal, a.change_frame_index, a.detected_frame_index)
            for i, q in enumerate(qualities)
            for a in mon.observe(Embedding(
                event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                frame_index=i, vector=[1.0] * 8, quality=q, ts=T0 + timedelta(seconds=i / 10)))]


@pytest.fixture(scope="module")
def frozen_stream() -> list[dict[str, float]]:
    return frame_qualities(ONSET + 60, seed=1, sigma=2.0, frozen_at=ONSET)


def test_a_frozen_feed_alerts_after_frozen_after_s(frozen_stream):
    # Pinned: the run's CUSUM change point (the second repeat), then 2 s (20 frames):
    # not MIN_DURATION's 45 s, whatever the tiles' calm rule says.
    assert alerts(frozen_stream) == [("quality.frozen", ONSET + 2, ONSET + 21)]
    # (49 updates: the run starts at the second frame, so its share of the events
    # in the rate's first REF is 48/49 of 5 s at 10/s.)
    assert alerts(frozen_stream, frozen_after_s=5.0) == [("quality.frozen", ONSET + 2,
                                                          ONSET + 50)]


@pytest.mark.parametrize(("gain", "sigma"), [(1.0, 1.0), (0.08, 1.0)])
def test_a_live_static_scene_with_sensor_noise_never_looks_frozen(gain, sigma):
    # A camera bolted to a wall over a scene where nothing moves, by day and at
    # night (8% of the light): sensor noise alone changes every frame.
    tiles = TileFeatures(reference_size=REF)
    runs = []
    for q in frame_qualities(300, seed=2, sigma=sigma, gain=gain):
        assert tiles.values(q).get("quality.frozen", 0.0) == 0.0
        runs.append(tiles.run)
    assert max(runs) == 0
