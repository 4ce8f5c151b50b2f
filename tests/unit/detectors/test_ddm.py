"""DDM on the error stream: pinned detection, the zero-variance guard, registry, state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import drift

from processors.detector_registry import detector_from_state, make_detector
from processors.detectors import Ddm, StateVersionError


def _jump(seed: int, n: int = 3000, at: int = 1000) -> list[int]:
    """Error bits: rate 0.1 before ``at``, 0.4 from ``at`` on."""
    rng = np.random.default_rng(seed)
    rate = np.where(np.arange(n) < at, 0.1, 0.4)
    return (rng.random(n) < rate).astype(int).tolist()


def _detections(det: Ddm, xs: list[int]) -> list[tuple[int, int]]:
    out = []
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            out.append((i, det.change_offset))
    return out


def test_pinned_detection_after_the_jump() -> None:
    hits = _detections(Ddm(), _jump(0))
    # Pinned on this seed: no false alarm before the jump, detection 41 bits
    # after it, and the warning onset (change_offset) points 13 bits after it.
    assert hits[0] == (1041, 28)
    assert hits[0][0] - hits[0][1] >= 1000


def test_detects_the_jump_on_most_seeds_within_a_few_hundred_bits() -> None:
    delays = []
    for seed in range(20):
        first_after = [i for i, _ in _detections(Ddm(), _jump(seed)) if i >= 1000]
        delays.append(first_after[0] - 1000 if first_after else 10_000)
    assert np.median(delays) < 150
    assert sum(d < 500 for d in delays) >= 18


def test_statistic_crosses_threshold_exactly_at_detection() -> None:
    det = Ddm()
    for x in _jump(0)[:1042]:
        det.update(x)
        assert det.drift_detected == (det.statistic > det.threshold)
    assert det.drift_detected


def test_guard_ignores_a_zero_variance_minimum() -> None:
    # 40 correct labels, then one error: river's DDM has p_min = s_min = 0 and fires.
    xs = [0] * 40 + [1]
    river_ddm = drift.binary.DDM()
    for x in xs:
        river_ddm.update(x)
    assert river_ddm.drift_detected
    assert _detections(Ddm(guard_zero_variance=False), xs) == [(40, 0)]
    assert _detections(Ddm(), xs) == []


def test_guard_cuts_false_alarms_of_a_good_model() -> None:
    def alarms(**kw: bool) -> int:
        total = 0
        for seed in range(40):
            rng = np.random.default_rng(100 + seed)
            total += len(_detections(Ddm(**kw), (rng.random(2000) < 0.02).astype(int).tolist()))
        return total

    assert alarms() < 0.6 * alarms(guard_zero_variance=False)


@pytest.mark.parametrize("bad", [0.5, 2, -1, float("nan")])
def test_rejects_non_bits(bad: float) -> None:
    with pytest.raises(ValueError, match="0/1"):
        Ddm().update(bad)


def test_accepts_bools_and_numpy_ints() -> None:
    det = Ddm()
    det.update(True)
    det.update(np.int64(0))
    assert det.n == 2 and det.error_rate == 0.5


def test_registry_builds_and_restores_ddm() -> None:
    det = make_detector("ddm", np.zeros(10), ert=1000)
    assert isinstance(det, Ddm)
    for x in _jump(1)[:500]:
        det.update(x)
    restored = detector_from_state(json.loads(json.dumps(det.state(), allow_nan=False)))
    assert isinstance(restored, Ddm) and restored.state() == det.state()


def test_refuses_other_river_version() -> None:
    det = Ddm()
    for x in _jump(2)[:200]:
        det.update(x)
    with pytest.raises(StateVersionError, match="river"):
        Ddm.from_state({**det.state(), "river_version": "0.0.1"})


def test_fresh_state_is_strict_json() -> None:
    state = Ddm().state()
    assert state["ps_min"] == "inf" and state["p_min"] is None
    restored = Ddm.from_state(json.loads(json.dumps(state, allow_nan=False)))
    assert _detections(restored, _jump(0)) == _detections(Ddm(), _jump(0))
