"""image_quality moves the right way under the shifts the monitor must catch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from processors.image_quality import QUALITY_KEYS, TILE_KEYS, image_quality
from producers.drift_injection import DriftSpec, apply_drift

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]


def vga(name: str) -> np.ndarray:
    """A real photo as a 640x480 camera frame."""
    return cv2.resize(getattr(skimage.data, name)(), (640, 480), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("name", PHOTOS)
def test_keys_and_ranges(name: str) -> None:
    q = image_quality(vga(name), encoded_size=51_200)
    assert set(q) == set(QUALITY_KEYS) | set(TILE_KEYS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in q.values())
    assert 0 <= q["brightness"] <= 255 and q["contrast"] > 5
    assert 0 <= q["saturation"] <= 1 and q["colourfulness"] >= 0
    assert (q["width"], q["height"], q["encoded_kb"]) == (640.0, 480.0, 50.0)
    assert "encoded_kb" not in image_quality(vga(name))


@pytest.mark.parametrize("name", PHOTOS)
def test_blur_lowers_sharpness(name: str) -> None:
    img = vga(name)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    s0, s1 = image_quality(img)["sharpness"], image_quality(blurred)["sharpness"]
    assert s1 < s0 - 1.0, (s0, s1)  # log1p scale: > e-fold drop in Laplacian variance


@pytest.mark.parametrize("name", PHOTOS)
def test_darkening_lowers_brightness(name: str) -> None:
    img = vga(name)
    dark = (img * 0.6).astype(np.uint8)
    b0, b1 = image_quality(img)["brightness"], image_quality(dark)["brightness"]
    assert b1 == pytest.approx(0.6 * b0, rel=0.03)


@pytest.mark.parametrize("name", PHOTOS)
def test_noise_raises_noise_estimate(name: str) -> None:
    img = vga(name)
    rng = np.random.default_rng(0)
    noisy = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    n0, n1 = image_quality(img)["noise"], image_quality(noisy)["noise"]
    assert n1 > n0 + 3.0, (n0, n1)


def test_noise_estimate_tracks_sigma_on_a_flat_frame() -> None:
    rng = np.random.default_rng(1)
    for sigma in (2.0, 5.0, 10.0):
        img = np.clip(128.0 + rng.normal(0, sigma, (480, 640, 1)), 0, 255).astype(np.uint8)
        assert image_quality(np.repeat(img, 3, axis=2))["noise"] == pytest.approx(sigma, rel=0.1)


def test_grey_image_has_no_saturation_or_colour() -> None:
    cam = skimage.data.camera()
    q = image_quality(np.repeat(cam[:, :, None], 3, axis=2))
    assert q["saturation"] == pytest.approx(0.0, abs=1e-6)
    assert q["colourfulness"] == pytest.approx(0.0, abs=1e-6)
    assert image_quality(vga("coffee"))["saturation"] > 0.2


def test_colour_cast_raises_colourfulness() -> None:
    img = vga("astronaut").astype(np.float32)
    cast = np.clip(img * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    assert image_quality(cast)["colourfulness"] > image_quality(img.astype(np.uint8))[
        "colourfulness"
    ] + 5


def test_large_and_tiny_frames() -> None:
    big = cv2.resize(vga("rocket"), (1920, 1080))
    q = image_quality(big)
    assert (q["width"], q["height"]) == (1920.0, 1080.0) and np.isfinite(q["sharpness"])
    tiny = image_quality(np.zeros((1, 2, 3), np.uint8))
    assert tiny["noise"] == 0.0 and tiny["brightness"] == 0.0
    with pytest.raises(ValueError):
        image_quality(np.zeros((4, 4), np.uint8))


def test_same_frame_same_answer_across_sizes_of_calls() -> None:
    """The per-thread scratch buffers must not leak one frame into the next."""
    a, b = vga("chelsea"), vga("coffee")
    qa = image_quality(a)
    image_quality(b)
    image_quality(cv2.resize(b, (320, 240)))
    assert image_quality(a) == qa


def test_colour_cast_moves_warmth_not_tint_of_grey() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(40, 200, (240, 320, 3)).astype(np.float64)
    cast = img.copy()
    cast[:, :, 0] *= 1.3
    cast[:, :, 2] *= 0.7
    q0 = image_quality(img.astype(np.uint8))
    q1 = image_quality(np.clip(cast, 0, 255).astype(np.uint8))
    # R x1.3 / B x0.7 is ln(1.3 / 0.7) = +0.62 of warmth; clipping takes a little off.
    assert q1["warmth"] - q0["warmth"] == pytest.approx(0.6, abs=0.08)
    assert abs(q0["warmth"]) < 0.02 and abs(q0["tint"]) < 0.02


def _tiles(q: dict[str, float], metric: str) -> np.ndarray:
    return np.array([q[f"tile_{metric}_{r}{c}"] for r in range(4) for c in range(4)])


@pytest.mark.parametrize("name", PHOTOS)
def test_tiles_agree_with_the_whole_frame(name: str) -> None:
    q = image_quality(vga(name))
    # 640x480 splits into 16 equal tiles: their mean brightness is the frame's.
    assert _tiles(q, "brightness").mean() == pytest.approx(q["brightness"], abs=1e-3)
    assert (_tiles(q, "contrast") >= 0).all() and np.isfinite(_tiles(q, "sharpness")).all()


@pytest.mark.parametrize("name", PHOTOS)
def test_a_smudge_blurs_tiles_more_than_the_frame(name: str) -> None:
    img = vga(name)
    rng = np.random.default_rng(0)
    q0 = image_quality(img)
    q1 = image_quality(apply_drift(img, DriftSpec("smudge", onset=0), 0, rng))
    drop = _tiles(q0, "sharpness") - _tiles(q1, "sharpness")
    # The smudged tiles lose far more than the frame's sharpness does.
    assert drop.max() > 1.5 and drop.max() > 2 * (q0["sharpness"] - q1["sharpness"]), drop


@pytest.mark.parametrize("name", PHOTOS)
def test_vignetting_darkens_corner_tiles_not_the_centre(name: str) -> None:
    img = vga(name)
    rng = np.random.default_rng(0)
    q0 = image_quality(img)
    q1 = image_quality(apply_drift(img, DriftSpec("vignetting", onset=0), 0, rng))
    ratio = _tiles(q1, "brightness") / np.maximum(_tiles(q0, "brightness"), 1.0)
    corners, centre = ratio[[0, 3, 12, 15]], ratio[[5, 6, 9, 10]]
    assert corners.max() < 0.7 and centre.min() > 0.8, ratio.round(2)


def test_a_uniform_frame_has_flat_tiles() -> None:
    q = image_quality(np.full((48, 64, 3), 100, np.uint8))
    assert set(_tiles(q, "brightness")) == {100.0} and set(_tiles(q, "sharpness")) == {0.0}
