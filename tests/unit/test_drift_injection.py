"""Every drift kind moves a cheap image signal the expected way, and only from its onset.

Signals are computed here with plain numpy so the test does not trust the code
it checks. Frames come from a real photo scene through the simulated camera: a
drifted camera and a clean one with the same seed show identical frames before
the onset and the same view after it, so each comparison isolates the drift.
"""

from __future__ import annotations

import numpy as np
import pytest

from producers.drift_injection import (
    KINDS,
    META_KINDS,
    PIXEL_KINDS,
    DriftSpec,
    apply_drift,
    drift_meta,
)
from producers.simulated_camera import SimulatedCamera

ONSET = 10
N = 16
SCENE = "chelsea"
SEED = 7


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def lap_var(rgb: np.ndarray) -> float:
    g = grey(rgb)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def mean(rgb: np.ndarray) -> float:
    return float(grey(rgb).mean())


def contrast(rgb: np.ndarray) -> float:
    return float(grey(rgb).std())


def hf_energy(rgb: np.ndarray) -> float:
    g = grey(rgb)
    return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean())


def blockiness(rgb: np.ndarray) -> float:
    # JPEG's 8x8 grid: jumps across block boundaries vs jumps inside blocks.
    d = np.abs(np.diff(grey(rgb), axis=1))
    cols = np.arange(d.shape[1])
    boundary = d[:, cols % 8 == 7].mean()
    inside = d[:, cols % 8 != 7].mean()
    return float(boundary / inside)


def rb_ratio(rgb: np.ndarray) -> float:
    f = rgb.astype(np.float64)
    return float(f[..., 0].mean() / f[..., 2].mean())


def near_black(rgb: np.ndarray) -> float:
    return float((rgb.max(axis=2) < 12).mean())


def extremes(rgb: np.ndarray) -> float:
    return float(((rgb.min(axis=2) == 255) | (rgb.max(axis=2) == 0)).mean())


def saturated(rgb: np.ndarray) -> float:
    return float((rgb.min(axis=2) >= 250).mean())


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(grey(a).ravel(), grey(b).ravel())[0, 1])


def render(spec: DriftSpec | None, n: int = N, scene: str = SCENE) -> list[np.ndarray]:
    cam = SimulatedCamera(scene, seed=SEED, drift=spec)
    return [f.rgb for f in cam.frames(n)]


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    return render(None)


# kind -> (signal, +1 if the drift raises it / -1 if it lowers it, minimum relative change)
EXPECTED = {
    "blur": (lap_var, -1, 0.5),
    "defocus": (lap_var, -1, 0.5),
    "brightness": (mean, -1, 0.3),
    "exposure": (saturated, +1, None),
    "contrast": (contrast, -1, 0.4),
    "gaussian_noise": (hf_energy, +1, 0.5),
    "salt_pepper": (extremes, +1, None),
    "jpeg": (blockiness, +1, 0.1),
    "color_cast": (rb_ratio, +1, 0.5),
    "occlusion": (near_black, +1, None),
    "dirty_lens": (lap_var, -1, 0.15),
    "resolution": (lap_var, -1, 0.5),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_pixel_kind_moves_its_signal(kind: str, clean: list[np.ndarray]) -> None:
    signal, direction, rel = EXPECTED[kind]
    drifted = render(DriftSpec(kind, onset=ONSET))
    for i in range(ONSET):  # no effect before the onset, bit for bit
        assert np.array_equal(drifted[i], clean[i]), f"{kind} changed frame {i} < onset"
    before = np.mean([signal(f) for f in clean[ONSET:]])
    after = np.mean([signal(f) for f in drifted[ONSET:]])
    if rel is None:  # signals that are ~0 on clean frames: an absolute jump
        assert after > before + 0.02, (kind, before, after)
    elif direction < 0:
        assert after < before * (1 - rel), (kind, before, after)
    else:
        assert after > before * (1 + rel), (kind, before, after)


def test_rotation_changes_the_view_not_the_statistics(clean: list[np.ndarray]) -> None:
    drifted = render(DriftSpec("rotation", onset=ONSET))
    assert all(np.array_equal(drifted[i], clean[i]) for i in range(ONSET))
    consecutive = np.mean([corr(clean[i], clean[i + 1]) for i in range(ONSET, N - 1)])
    vs_clean = np.mean([corr(drifted[i], clean[i]) for i in range(ONSET, N)])
    assert consecutive > 0.85
    assert vs_clean < consecutive - 0.3
    # Real pixels of the scene, not a black border: brightness stays put.
    assert abs(mean(drifted[-1]) - mean(clean[-1])) < 0.1 * mean(clean[-1])


def test_scene_change_lowers_correlation_with_pre_onset(clean: list[np.ndarray]) -> None:
    cam = SimulatedCamera(SCENE, seed=SEED, drift=DriftSpec("scene_change", onset=ONSET))
    frames = list(cam.frames(N))
    pre = frames[ONSET - 1].rgb
    assert np.array_equal(pre, clean[ONSET - 1])
    assert corr(clean[ONSET], pre) > 0.9
    assert corr(frames[ONSET].rgb, pre) < 0.5
    assert frames[ONSET].meta["scene"] != SCENE
    assert frames[ONSET - 1].meta["scene"] == SCENE


def test_scene_change_to_named_target() -> None:
    cam = SimulatedCamera(SCENE, seed=SEED, drift=DriftSpec("scene_change", 2, target="coffee"))
    assert [f.meta["scene"] for f in cam.frames(4)] == [SCENE, SCENE, "coffee", "coffee"]


def test_frozen_repeats_the_onset_frame(clean: list[np.ndarray]) -> None:
    frames = render(DriftSpec("frozen", onset=ONSET))
    assert all(np.array_equal(frames[i], clean[i]) for i in range(ONSET))
    for i in range(ONSET + 1, N):
        assert np.array_equal(frames[i], frames[ONSET])
    assert not np.array_equal(clean[ONSET], clean[ONSET + 1])  # the clean feed moves


@pytest.mark.parametrize("kind", META_KINDS)
def test_meta_only_kinds_leave_pixels_alone(kind: str, clean: list[np.ndarray]) -> None:
    cam = SimulatedCamera(SCENE, seed=SEED, drift=DriftSpec(kind, onset=ONSET))
    frames = list(cam.frames(N))
    assert all(np.array_equal(f.rgb, c) for f, c in zip(frames, clean, strict=True))
    assert frames[ONSET].meta["drift"] == kind
    assert [f.meta["drift_active"] for f in frames[ONSET - 1 : ONSET + 1]] == ["0", "1"]


def test_every_frame_records_the_true_change_point() -> None:
    cam = SimulatedCamera(SCENE, seed=1, drift=DriftSpec("blur", onset=3, ramp=4))
    metas = [f.meta for f in cam.frames(8)]
    assert {m["drift"] for m in metas} == {"blur"}
    assert {m["drift_onset"] for m in metas} == {"3"}
    assert [m["drift_active"] for m in metas] == ["0", "0", "0", "1", "1", "1", "1", "1"]
    assert [m["drift_strength"] for m in metas[2:]] == [
        "0.000",
        "0.250",
        "0.500",
        "0.750",
        "1.000",
        "1.000",
    ]
    clean = next(iter(SimulatedCamera(SCENE, seed=1))).meta
    assert (clean["drift"], clean["drift_onset"], clean["drift_active"]) == ("none", "-1", "0")


def test_gradual_ramp_gives_intermediate_values() -> None:
    onset, ramp = 5, 100
    cam_kwargs = {"seed": 3, "occluder_rate": 0.0}
    clean = SimulatedCamera(SCENE, **cam_kwargs)
    drifted = SimulatedCamera(SCENE, drift=DriftSpec("brightness", onset, ramp=ramp), **cam_kwargs)
    ratios = {}
    for c, d in zip(clean.frames(onset + ramp + 5), drifted.frames(onset + ramp + 5), strict=True):
        ratios[c.index] = mean(d.rgb) / mean(c.rgb)
    half = onset + ramp // 2 - 1  # strength 0.5 -> 20% darker
    full = onset + ramp + 2
    assert ratios[onset - 1] == pytest.approx(1.0)
    assert ratios[half] == pytest.approx(0.8, abs=0.02)
    assert ratios[full] == pytest.approx(0.6, abs=0.02)
    assert ratios[onset] > ratios[half] > ratios[full]


# ---------------------------------------------------------------- apply_drift directly


def test_apply_drift_before_onset_returns_the_input() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    for kind in KINDS:
        spec = DriftSpec(kind, onset=100)
        assert apply_drift(rgb, spec, 99, rng) is rgb
    assert apply_drift(rgb, None, 500, rng) is rgb


@pytest.mark.parametrize("kind", PIXEL_KINDS)
def test_apply_drift_changes_pixels_and_keeps_shape(kind: str) -> None:
    rgb = np.random.default_rng(0).integers(40, 200, (48, 64, 3), dtype=np.uint8)
    before = rgb.copy()
    out = apply_drift(rgb, DriftSpec(kind, onset=0), 0, np.random.default_rng(1))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.array_equal(out, rgb)
    assert np.array_equal(rgb, before)  # never in place


def test_apply_drift_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        apply_drift(np.zeros((4, 4), np.uint8), DriftSpec("blur", 0), 0, np.random.default_rng())


def test_unknown_kind_lists_valid_kinds() -> None:
    with pytest.raises(ValueError) as info:
        DriftSpec("fog", onset=0)
    for kind in KINDS:
        assert kind in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"onset": -1},
        {"onset": 1.5},
        {"onset": True},
        {"ramp": -2},
        {"severity": 0.0},
        {"severity": float("nan")},
        {"severity": 10.0},
        {"target": "coffee"},
    ],
)
def test_spec_validation(kwargs: dict) -> None:
    args = {"kind": "blur", "onset": 0} | kwargs
    with pytest.raises(ValueError):
        DriftSpec(**args)


def test_spec_is_frozen_and_parses() -> None:
    spec = DriftSpec.parse("color_cast@3000:200:0.5")
    assert spec == DriftSpec("color_cast", 3000, 200, 0.5)
    with pytest.raises(AttributeError):
        spec.onset = 1  # type: ignore[misc]
    for bad in ("blur", "blur@", "blur@x", "fog@3", "blur@1:2:3:4:5"):
        with pytest.raises(ValueError):
            DriftSpec.parse(bad)


def test_drift_meta_is_all_strings() -> None:
    meta = drift_meta(DriftSpec("jpeg", 7), 7)
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["drift_active"] == "1"
