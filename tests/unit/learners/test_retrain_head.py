"""RetrainHead on seeded labelled streams: beats a broken deployed model, not a sound one."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from processors.detectors import StateVersionError
from processors.learners import RetrainHead

K = 8
CLASSES = np.array(list("abcd"))
CENTRES = np.random.default_rng(7).normal(size=(4, K)) * 1.5


def _stream(seed: int, n: int, *, broken: bool) -> list[tuple[np.ndarray, str, str]]:
    """(projection, truth, deployed); the deployed model is nearest-centre (near Bayes).

    ``broken``: it also says "a" whenever it would say "b" (one region misread).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = CENTRES[y] + rng.normal(size=(n, K))
    nearest = np.argmin(((x[:, None, :] - CENTRES[None]) ** 2).sum(-1), axis=1)
    deployed = CLASSES[nearest]
    if broken:
        deployed = np.where(deployed == "b", "a", deployed)
    return [(x[i], str(CLASSES[y[i]]), str(deployed[i])) for i in range(n)]


def _first_advice(head: RetrainHead, stream: list) -> int | None:
    for i, (x, truth, dep) in enumerate(stream):
        head.learn(x, truth, dep)
        if head.retrain_advised:
            return i + 1
    return None


def test_advised_after_a_pinned_number_of_labels_when_deployed_misreads_a_region() -> None:
    head = RetrainHead(K)
    stream = _stream(0, 1500, broken=True)
    # Pinned: 3 labels after min_labels (100); the head needs a few dozen labels to learn "b".
    assert _first_advice(head, stream) == 103
    for x, truth, dep in stream[103:]:
        head.learn(x, truth, dep)
    assert head.retrain_advised and head.p_value < 1e-10
    assert head.gain > 0.15
    assert head.head_accuracy > 0.9 > 0.8 > head.deployed_accuracy
    acc_b, n_b = head.per_class_accuracy()["b"]
    assert acc_b == 0.0 and n_b > 80
    assert head.per_class_accuracy()["c"][0] > 0.9
    assert head.n_labels == 1500 and head.n_window == 500


def test_min_labels_and_alpha_gate_the_advice() -> None:
    stream = _stream(1, 400, broken=True)
    assert _first_advice(RetrainHead(K, min_labels=250), stream) == 250
    strict = RetrainHead(K, min_labels=20, alpha=1e-12)
    late = _first_advice(strict, stream)
    assert late is not None and late > _first_advice(RetrainHead(K, min_labels=20), stream)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_never_advised_when_the_deployed_model_is_sound(seed: int) -> None:
    head = RetrainHead(K, min_labels=50)
    assert _first_advice(head, _stream(10 + seed, 3000, broken=False)) is None
    assert head.gain <= 0.02
    b, c = head.discordant
    assert b + c >= 5  # the test did see disagreements


def test_window_forgets_a_fixed_regime() -> None:
    head = RetrainHead(K, window=200)
    for x, truth, dep in _stream(4, 600, broken=True) + _stream(5, 600, broken=False):
        head.learn(x, truth, dep)
    assert not head.retrain_advised
    assert head.per_class_accuracy()["b"][0] > 0.8


def _trace(head: RetrainHead, stream: list) -> list:
    out = []
    for x, truth, dep in stream:
        head.learn(x, truth, dep)
        out.append((head.predict(x), head.gain, head.p_value, head.retrain_advised))
    return out


def test_roundtrip_mid_stream_continues_bit_for_bit() -> None:
    stream = _stream(6, 900, broken=True)
    full = _trace(RetrainHead(K, window=150), stream)
    for cut in (0, 99, 149, 150, 600):
        head = RetrainHead(K, window=150)
        _trace(head, stream[: cut + 1])
        restored = RetrainHead.from_state(json.loads(json.dumps(head.state(), allow_nan=False)))
        # Pickle bytes of a re-pickled river pipeline may differ in memo layout;
        # everything else must be equal, and the continuation below is exact.
        assert {**restored.state(), "pickle": ""} == {**head.state(), "pickle": ""}
        assert restored.per_class_accuracy() == head.per_class_accuracy()
        assert _trace(restored, stream[cut + 1 :]) == full[cut + 1 :], cut


def test_empty_head_and_state() -> None:
    head = RetrainHead(K)
    assert head.predict(np.zeros(K)) is None
    assert np.isnan(head.head_accuracy) and head.gain == 0.0 and head.p_value == 1.0
    assert head.per_class_accuracy() == {}
    restored = RetrainHead.from_state(json.loads(json.dumps(head.state(), allow_nan=False)))
    assert restored.n_labels == 0 and not restored.retrain_advised


def test_state_size_is_bounded() -> None:
    head = RetrainHead(K)
    for x, truth, dep in _stream(8, 2000, broken=True):
        head.learn(x, truth, dep)
    assert len(json.dumps(head.state())) < 12_000


def test_refuses_other_versions_and_bad_inputs() -> None:
    head = RetrainHead(K)
    for x, truth, dep in _stream(9, 50, broken=True):
        head.learn(x, truth, dep)
    state = head.state()
    with pytest.raises(StateVersionError, match="river"):
        RetrainHead.from_state({**state, "river_version": "0.0.1"})
    with pytest.raises(StateVersionError):
        RetrainHead.from_state({**state, "type": "outlier_scorer"})
    with pytest.raises(StateVersionError, match="decode"):
        RetrainHead.from_state({**state, "pickle": base64.b64encode(b"garbage").decode()})
    with pytest.raises(StateVersionError, match="inconsistent"):
        RetrainHead.from_state({**state, "recent_head_ok": state["recent_head_ok"][:-1]})
    with pytest.raises(ValueError, match="components"):
        head.learn(np.zeros(K - 1), "a", "a")
    with pytest.raises(ValueError, match="non-finite"):
        head.learn(np.full(K, np.nan), "a", "a")
    assert head.n_labels == 50
