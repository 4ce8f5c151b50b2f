"""Windowed two-sample tests: checkpoints, detection, false alarms on correlated data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from processors.calibration import ar1_stream
from processors.detectors import PSI, ChiSquaredMix, StateVersionError, WindowedKS
from processors.detectors.windowed import sticky_markov, window_paths, window_statistic


def _confidence(seed: int, n: int) -> np.ndarray:
    """A confidence-like signal in (0, 1): logistic of AR(1) rho=0.85 around 2."""
    return 1 / (1 + np.exp(-ar1_stream(np.random.default_rng(seed), n, rho=0.85) - 2))


def _classes(seed: int, n: int) -> np.ndarray:
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    return sticky_markov(np.random.default_rng(seed), p, 0.8, 1, n)[0] * 3 + 1


def test_paths_match_the_detector_update_by_update() -> None:
    x = _confidence(0, 1500)
    for cls in (WindowedKS, PSI):
        det = cls.calibrated(x[:1000], ert=500, window=50, seed=1)
        bins = np.array([det.bin_of(v) for v in x[1000:]])[None, :]
        path = window_paths(det.test, bins, det.probs, det.window, det.n_bins)[0]
        stats = []
        for v in x[1000:]:
            det.update(v)
            stats.append(det.statistic if len(det._bins) == det.window else -np.inf)
            if det.drift_detected:
                break
        n = len(stats)
        np.testing.assert_allclose(stats, path[:n], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cls", [WindowedKS, PSI, ChiSquaredMix])
def test_roundtrip_mid_stream(cls) -> None:
    categorical = cls is ChiSquaredMix
    x = _classes(1, 4000) if categorical else _confidence(1, 4000)
    x = x.astype(float)
    if categorical:
        x[2500:] = np.where(x[2500:] == 1, 7, x[2500:])  # class 1 turns into class 7
    else:
        x[2500:] = x[2500:] ** 3
    make = lambda: cls.calibrated(x[:1000], ert=1000, window=100, categorical=categorical)  # noqa: E731
    ref = make()
    full = []
    for v in x[1000:]:
        ref.update(v)
        full.append((ref.drift_detected, ref.statistic))
    assert sum(d for d, _ in full) >= 1
    for cut in (50, 777, 1600):
        det = make()
        for v in x[1000 : 1000 + cut]:
            det.update(v)
        restored = cls.from_state(json.loads(json.dumps(det.state(), allow_nan=False)))
        rest = []
        for v in x[1000 + cut :]:
            restored.update(v)
            rest.append((restored.drift_detected, restored.statistic))
        assert rest == full[cut:]
    with pytest.raises(StateVersionError):
        (PSI if cls is not PSI else WindowedKS).from_state(ref.state())


def test_statistics_on_known_counts() -> None:
    p = np.array([0.25, 0.25, 0.5])
    same = np.array([[25, 25, 50]])
    assert window_statistic("chi2", same, p)[0] == 0.0
    assert window_statistic("ks", same, p)[0] == pytest.approx(0.0)
    assert window_statistic("psi", np.array([[0, 0, 100]]), p)[0] > 1.0


def test_class_mix_detects_a_new_class_quickly() -> None:
    x = _classes(2, 3000).astype(float)
    det = ChiSquaredMix.calibrated(x[:1000], ert=10_000, window=200, categorical=True, bins=8)
    mon = x[1000:].copy()
    mon[1000:] = np.where(np.arange(1000) % 3 == 0, 99.0, mon[1000:])  # 1 in 3 frames: unseen class
    hit = next(i for i, v in enumerate(mon) if (det.update(v), det.drift_detected)[1])
    assert 1000 <= hit < 1000 + 120, hit


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        WindowedKS.calibrated(np.zeros(2000), ert=1000)  # a single value: nothing to compare
    with pytest.raises(ValueError):
        ChiSquaredMix.calibrated(np.linspace(0, 1, 2000), ert=1000, categorical=True)
    det = WindowedKS.calibrated(_confidence(3, 1000), ert=1000, window=50)
    with pytest.raises(ValueError):
        det.update(float("nan"))


@pytest.mark.slow
def test_false_alarms_on_correlated_clean_data_match_ert_order() -> None:
    """3 seeds x 100,000 clean values per test; ert 10,000 -> 30 expected alarms in all.

    Measured: WindowedKS 24 + 9 + 5 = 38, PSI 19 + 6 + 5 = 30, ChiSquaredMix
    (sticky class chain) 4 + 4 + 0 = 8 alarms: pooled run lengths 7,900,
    10,000 and 37,500.
    """
    n = 100_000
    totals = {"windowed_ks": 0, "psi": 0, "chi2_mix": 0}
    for seed in range(3):
        conf = _confidence(200 + seed, n + 1000)
        labels = _classes(300 + seed, n + 1000).astype(float)
        for cls, data, kw in (
            (WindowedKS, conf, {}),
            (PSI, conf, {}),
            (ChiSquaredMix, labels, {"categorical": True, "bins": 6}),
        ):
            det = cls.calibrated(data[:1000], ert=10_000, window=200, **kw)
            for v in data[1000:].tolist():
                det.update(v)
                totals[cls.name] += det.drift_detected
    for name, alarms in totals.items():
        assert 3 * n / max(alarms, 1) >= 10_000 / 3, (name, alarms)
