"""WindowedMMD: checkpoints, a pinned detection, false alarms vs ERT on correlated streams."""

from __future__ import annotations

import json

import numpy as np
import pytest

from processors.calibration import ar1_stream
from processors.detector_registry import detector_from_state
from processors.detectors import Cusum, StateVersionError, WindowedMMD
from processors.detectors.mmd import mmd_paths
from processors.embedding_reference import EmbeddingReference


def _ar(seed: int, n: int, k: int = 8, rho: float = 0.9) -> np.ndarray:
    """``(n, k)`` independent AR(1) components, N(0, 1) marginals."""
    return ar1_stream(np.random.default_rng(seed), n, rho=rho, shape=(k,)).T


def _changed(seed: int, n: int = 3000, at: int = 1500, shift: float = 1.0) -> np.ndarray:
    x = _ar(seed, n)
    x[at:] += shift  # every component moves by `shift` marginal sds
    return x


def _trace(det: WindowedMMD, xs: np.ndarray) -> list[tuple[bool, float, int]]:
    out = []
    for x in xs:
        det.update(x)
        out.append((det.drift_detected, det.statistic, det.change_offset))
    return out


@pytest.fixture(scope="module")
def calibrated() -> dict:
    return WindowedMMD.calibrated(_ar(1, 1000), ert=5000).state()


def test_roundtrip_mid_stream_continues_bit_for_bit(calibrated: dict) -> None:
    xs = _changed(2)
    full = _trace(WindowedMMD.from_state(calibrated), xs)
    hits = [i for i, (d, _, _) in enumerate(full) if d]
    assert len(hits) >= 2
    for cut in sorted({10, 777, 1523, hits[0], hits[-1]}):
        det = WindowedMMD.from_state(calibrated)
        _trace(det, xs[: cut + 1])
        blob = json.dumps(det.state(), allow_nan=False)
        restored = detector_from_state(json.loads(blob))  # registered by its type
        assert isinstance(restored, WindowedMMD)
        assert restored.state() == det.state()
        assert _trace(restored, xs[cut + 1 :]) == full[cut + 1 :], f"diverged after {cut}"


def test_pinned_detection_after_change_at_1500(calibrated: dict) -> None:
    det = WindowedMMD.from_state(calibrated)
    hits = [i for i, (d, _, _) in enumerate(_trace(det, _changed(3))) if d]
    first = next(i for i in hits if i >= 1500)
    assert 1500 < first < 1500 + 2 * det.window
    # Pinned (as river's tests do): any change to the maths or the calibration
    # moves these. One false alarm in 1,500 updates at ERT 5,000 is ordinary.
    assert hits[:3] == [619, 1536, 1586]
    assert det.change_offset == 0 and det.window - 1 == 49


def test_false_alarms_match_ert_on_correlated_streams() -> None:
    # 50,000 clean AR(1) rho=0.9 updates at ERT 5,000: about 10 expected. A
    # threshold from i.i.d. samples would fire hundreds of times here.
    total = 0
    for seed in (11, 12):
        det = WindowedMMD.calibrated(_ar(seed, 1000), ert=5000, seed=seed)
        total += sum(d for d, _, _ in _trace(det, _ar(seed + 100, 25_000)))
    assert 2 <= total <= 30, total


def test_window_memory_is_bounded(calibrated: dict) -> None:
    det = WindowedMMD.from_state(calibrated)
    det._threshold = 1e9  # never fire: the window must still not grow
    for x in _ar(4, 500):
        det.update(x)
    assert det._phis.maxlen == det._zs.maxlen == det.window == 50
    assert len(det._phis) == len(det._zs) == 50
    # The running sum stays the window's sum (resummed periodically).
    np.testing.assert_allclose(det._sum, np.sum(np.asarray(det._phis), axis=0), atol=1e-12)


@pytest.mark.parametrize("track", [0.0, 0.02])
def test_paths_match_the_detector(track: float) -> None:
    rng = np.random.default_rng(5)
    s = _ar(6, 700, k=3)[None]
    om, ph = rng.standard_normal((3, 24)), rng.uniform(0, 2 * np.pi, 24)
    mu0 = (np.sqrt(2 / 24) * np.cos(s[0, :200] @ om + ph)).mean(axis=0)
    det = WindowedMMD(np.zeros(3), np.ones(3), om, ph, mu0, 20, 1e9, track=track)
    stats = [s for _, s, _ in _trace(det, s[0, 200:])]
    path = mmd_paths(s, om, ph, 200, 20, track=track)[0]
    assert np.all(np.isneginf(path[:19]))
    np.testing.assert_allclose(path[19:], stats[19:], rtol=1e-5, atol=1e-7)


def test_tracking_reference_follows_a_persistent_new_normal() -> None:
    ref = _ar(7, 1000)
    xs = _changed(8, n=6000, at=500, shift=1.5)
    fixed = WindowedMMD.calibrated(ref, ert=5000)
    tracked = WindowedMMD.calibrated(ref, ert=5000, track=0.01)
    late_fixed = sum(d for d, _, _ in _trace(fixed, xs)[3000:])
    hits = [i for i, (d, _, _) in enumerate(_trace(tracked, xs)) if d]
    assert late_fixed > 20  # a fixed reference alarms every W frames forever
    assert any(500 <= i < 600 for i in hits)  # the tracked one still sees the change
    assert sum(i >= 3000 for i in hits) <= 2


def test_bad_input_and_state_mismatch(calibrated: dict) -> None:
    det = WindowedMMD.from_state(calibrated)
    with pytest.raises(ValueError, match="vector of 8"):
        det.update(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        det.update(np.full(8, np.nan))
    with pytest.raises(StateVersionError):
        WindowedMMD.from_state({**calibrated, "version": 99})
    with pytest.raises(StateVersionError):
        Cusum.from_state(calibrated)
    with pytest.raises(ValueError, match="need an"):
        WindowedMMD.calibrated(_ar(1, 60), ert=100)


def test_calibrated_on_embedding_projections() -> None:
    rng = np.random.default_rng(9)
    emb = rng.normal(size=(300, 32)) + 3.0
    ref = EmbeddingReference.fit(emb[:200], k=4)
    det = WindowedMMD.calibrated(ref.project_many(emb[:200]), ert=1000, features=64)
    assert det.k == 4 and det.n_features == 64
    assert det.calibration["fit"]["method"] in {"simulated", "extrapolated"}
    for v in emb[200:]:
        det.update(ref.project(v))
    assert det.statistic >= 0.0
