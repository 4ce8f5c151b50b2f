"""OutlierScorer on seeded projections: odd frames flagged, clean rate calibrated, exact state."""

from __future__ import annotations

import base64
import json
import pickle

import numpy as np
import pytest

from processors.detectors import StateVersionError
from processors.embedding_reference import EmbeddingReference
from processors.learners import OutlierScorer

D, K = 64, 8


def _embeddings(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Embedding-like vectors: an offset, 8 latent factors of decreasing weight, noise.

    ``shift`` adds that many latent sds along the 4th and 8th factors (an odd frame).
    """
    basis = np.random.default_rng(99).normal(size=(K, D))  # fixed across calls
    weights = 1.0 / np.sqrt(np.arange(1, K + 1))
    z = rng.normal(size=(n, K))
    z[:, 3] += shift
    z[:, 7] += shift
    return 8.0 + (z * weights) @ basis + 0.05 * rng.normal(size=(n, D))


def _project(ref: EmbeddingReference, v: np.ndarray) -> np.ndarray:
    """What ``EmbeddingReference.project`` will do: normalise, centre, multiply by basis.T."""
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return (v - ref.mean) @ ref.basis.T


@pytest.fixture(scope="module")
def setup() -> dict:
    rng = np.random.default_rng(2024)
    emb_ref = _embeddings(rng, 1000)
    pca = EmbeddingReference.fit(emb_ref, k=K)
    stream = _project(pca, _embeddings(rng, 2000))
    odd_at = np.sort(rng.choice(2000, 20, replace=False))
    stream[odd_at] = _project(pca, _embeddings(rng, 20, shift=5.0))
    return {"ref": _project(pca, emb_ref), "stream": stream, "odd_at": odd_at}


def _trace(scorer: OutlierScorer, xs: np.ndarray) -> list[tuple[float, bool, float, float]]:
    out = []
    for x in xs:
        s = scorer.update(x)
        out.append((s, scorer.is_outlier, scorer.signal_value, scorer.outlier_rate))
    return out


def test_flags_injected_odd_frames_and_clean_rate_near_expected(setup: dict) -> None:
    scorer = OutlierScorer.fit(setup["ref"], seed=0, quantile=0.99)
    flags = np.array([t[1] for t in _trace(scorer, setup["stream"])])
    odd = np.zeros(len(flags), bool)
    odd[setup["odd_at"]] = True
    hit, clean = flags[odd].mean(), flags[~odd].mean()
    assert hit >= 0.9
    # Expected 1 %; the cross-fitted threshold is slightly conservative.
    assert 0.003 <= clean <= 0.02, clean
    assert hit >= 30 * clean
    assert scorer.expected_rate == pytest.approx(0.01)
    assert scorer.n_updates == 2000 and scorer.n_outliers == flags.sum()


def test_in_sample_threshold_would_be_badly_miscalibrated(setup: dict) -> None:
    # Guards the cross-fitting: the full model's own reference scores are far lower.
    scorer = OutlierScorer.fit(setup["ref"], seed=0)
    in_sample = np.array([scorer.score(x) for x in setup["ref"]])
    assert np.quantile(in_sample, 0.99) < scorer.threshold
    assert (
        np.array([scorer.score(x) for x in setup["stream"][:500]]) > np.quantile(in_sample, 0.99)
    ).mean() > 0.05


def test_a_burst_of_odd_frames_stays_odd(setup: dict) -> None:
    rng = np.random.default_rng(5)
    pca = EmbeddingReference.fit(_embeddings(np.random.default_rng(2024), 1000), k=K)
    burst = _project(pca, _embeddings(rng, 300, shift=5.0))
    scorer = OutlierScorer.fit(setup["ref"], seed=0, window=100)
    flags = [t[1] for t in _trace(scorer, burst)]
    assert np.mean(flags[-100:]) >= 0.9  # not learnt as normal
    assert scorer.outlier_rate == np.mean(flags[-100:])
    assert scorer.n_window == 100


def test_signal_value_is_clipped_score_and_reference_signal_matches(setup: dict) -> None:
    scorer = OutlierScorer.fit(setup["ref"], seed=0)
    assert scorer.signal_value == 0.0
    sig = scorer.reference_signal
    assert sig is not None and sig.shape == (len(setup["ref"]),)
    assert sig.max() <= scorer.signal_cap
    assert np.mean(sig > scorer.threshold) == pytest.approx(0.01, abs=0.002)
    for s, _, v, _ in _trace(scorer, setup["stream"][:300]):
        assert v == min(s, scorer.signal_cap)
    assert scorer.signal_cap > scorer.threshold


def test_roundtrip_mid_stream_continues_bit_for_bit(setup: dict) -> None:
    xs = setup["stream"]
    full = _trace(OutlierScorer.fit(setup["ref"], seed=3, window=50), xs)
    first_odd = int(setup["odd_at"][0])
    for cut in sorted({0, 137, first_odd, 1500}):
        scorer = OutlierScorer.fit(setup["ref"], seed=3, window=50)
        _trace(scorer, xs[: cut + 1])
        blob = json.dumps(scorer.state(), allow_nan=False)
        restored = OutlierScorer.from_state(json.loads(blob))
        assert restored.state() == scorer.state()
        assert restored.is_outlier == full[cut][1]
        assert _trace(restored, xs[cut + 1 :]) == full[cut + 1 :], cut


def test_fresh_state_roundtrips_and_size_is_small(setup: dict) -> None:
    scorer = OutlierScorer.fit(setup["ref"], seed=0)
    restored = OutlierScorer.from_state(json.loads(json.dumps(scorer.state(), allow_nan=False)))
    assert restored.signal_value == 0.0 and restored.reference_signal is None
    _trace(scorer, setup["stream"][:600])
    assert len(json.dumps(scorer.state())) < 60_000


def test_refuses_other_versions_and_foreign_pickles(setup: dict) -> None:
    state = OutlierScorer.fit(setup["ref"][:500], seed=0, quantile=0.98).state()
    with pytest.raises(StateVersionError, match="river"):
        OutlierScorer.from_state({**state, "river_version": "0.0.1"})
    with pytest.raises(StateVersionError):
        OutlierScorer.from_state({**state, "version": 2})
    with pytest.raises(StateVersionError):
        OutlierScorer.from_state({**state, "type": "retrain_head"})
    raw = base64.b64decode(state["pickle"])
    cut = base64.b64encode(raw[: len(raw) // 2]).decode()
    with pytest.raises(StateVersionError, match="decode"):
        OutlierScorer.from_state({**state, "pickle": cut})
    evil = base64.b64encode(pickle.dumps(print)).decode()  # any non-river global
    with pytest.raises(StateVersionError, match="decode"):
        OutlierScorer.from_state({**state, "pickle": evil})


def test_rejects_bad_inputs(setup: dict) -> None:
    scorer = OutlierScorer.fit(setup["ref"], seed=0)
    with pytest.raises(ValueError, match="components"):
        scorer.update(np.zeros(K + 1))
    with pytest.raises(ValueError, match="non-finite"):
        scorer.update(np.r_[np.zeros(K - 1), np.nan])
    assert scorer.n_updates == 0
    with pytest.raises(ValueError, match="too few"):
        OutlierScorer.fit(setup["ref"][:300], quantile=0.99)
    with pytest.raises(ValueError, match="non-finite"):
        OutlierScorer.fit(np.full((600, K), np.inf))


def test_constant_component_does_not_divide_by_zero(setup: dict) -> None:
    ref = setup["ref"].copy()
    ref[:, -1] = 0.0
    scorer = OutlierScorer.fit(ref, seed=0)
    assert np.isfinite(scorer.update(ref[0]))


def test_unpickler_refuses_modules_a_river_module_imported(setup: dict) -> None:
    # GLOBAL "river.datasets.base os" would hand the os module to the pickle.
    evil = b"\x80\x04cr" + b"iver.datasets.base\nos\n."
    state = OutlierScorer.fit(setup["ref"][:500], seed=0, quantile=0.98).state()
    with pytest.raises(StateVersionError, match="refusing"):
        OutlierScorer.from_state({**state, "pickle": base64.b64encode(evil).decode()})
