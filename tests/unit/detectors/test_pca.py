"""PCA reference and its CUSUM pair on correlated embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from processors.detectors import PCADetector, PCAReference, StateVersionError

D = 32


def _embeddings(seed: int, n: int, rho: float = 0.85) -> np.ndarray:
    """VAR(1) embeddings: a strong 4-d subspace plus isotropic noise, around a mean."""
    rng = np.random.default_rng(seed)
    scale = np.r_[np.full(4, 4.0), np.ones(D - 4)]
    out = np.empty((n, D))
    state = rng.normal(size=D)
    for i in range(n):
        state = rho * state + np.sqrt(1 - rho * rho) * rng.normal(size=D)
        out[i] = state * scale
    return out + 20.0


def test_scores_match_between_one_and_many() -> None:
    x = _embeddings(0, 300)
    pca = PCAReference.fit(x, k=4)
    many = pca.scores_many(x[:5])
    one = np.array([pca.scores(v) for v in x[:5]])
    np.testing.assert_allclose(many, one, rtol=1e-12)
    restored = PCAReference.from_state(json.loads(json.dumps(pca.state())))
    np.testing.assert_array_equal(restored.basis, pca.basis)
    with pytest.raises(ValueError):
        pca.scores(np.ones(D + 1))


def test_detects_a_new_direction_and_roundtrips() -> None:
    x = _embeddings(1, 3000)
    make = lambda: PCADetector.calibrated(x[:1000], ert=10_000, k=4)  # noqa: E731
    mon = x[1000:].copy()
    mon[1000:, 10] += 6.0  # energy along a direction the reference never used much
    ref = make()
    trace = []
    for v in mon:
        ref.update(v)
        trace.append((ref.drift_detected, ref.statistic, ref.fired))
    hits = [i for i, (d, _, _) in enumerate(trace) if d]
    assert hits and 1000 <= hits[0] < 1100, hits[:3]
    assert trace[hits[0]][2] in ("spe", "t2")
    for cut in (400, hits[0]):
        det = make()
        for v in mon[: cut + 1]:
            det.update(v)
        restored = PCADetector.from_state(json.loads(json.dumps(det.state(), allow_nan=False)))
        rest = []
        for v in mon[cut + 1 :]:
            restored.update(v)
            rest.append((restored.drift_detected, restored.statistic, restored.fired))
        assert rest == trace[cut + 1 :]
    bad = ref.state()
    bad["reference"]["mean"] = bad["reference"]["basis"]
    with pytest.raises(StateVersionError):
        PCADetector.from_state(bad)


@pytest.mark.slow
def test_few_false_alarms_on_clean_correlated_embeddings() -> None:
    """3 x 30,000 clean VAR(1) embeddings, ert 10,000 -> ~9 alarms expected.

    Measured: 3 + 4 + 6 = 13 alarms in 90,000 (run length 6,900).
    """
    alarms, n = 0, 30_000
    for seed in range(3):
        x = _embeddings(10 + seed, 1000 + n)
        det = PCADetector.calibrated(x[:1000], ert=10_000, k=4)
        for v in x[1000:]:
            det.update(v)
            alarms += det.drift_detected
    assert 3 * n / max(alarms, 1) >= 10_000 / 3, alarms
