"""MixCusum, the class-mix test of ``output.class_mix``, on seeded sticky streams with wander."""

from __future__ import annotations

import copy
import json

import numpy as np

from driftline.settings import MonitorSettings
from processors.detector_registry import class_mix_detector, mix_cusum_detector
from processors.detectors.mix_cusum import MixCusum
from processors.monitor import StreamMonitor
from schemas.events import Prediction

ONSET = 4000


def sticky_wandering(n: int, *, seed: int, triple_at: int | None = None) -> np.ndarray:
    """Five classes kept with probability 0.85; log-shares wander (sigma 0.2, 10 min at 10/s).

    From ``triple_at`` the fourth most common class's share triples (renormalised).
    """
    rng = np.random.default_rng(seed)
    mix = np.array([0.45, 0.25, 0.14, 0.08, 0.08])
    a = np.exp(-1 / 6000)
    z = rng.normal(size=5)
    out = np.empty(n, dtype=int)
    c = 0
    for i in range(n):
        z = a * z + rng.normal(size=5) * np.sqrt(1 - a * a)
        fresh = rng.random() >= 0.85
        w = mix * np.exp(0.2 * z)
        if triple_at is not None and i >= triple_at:
            w[3] *= 3.0
        pick = rng.random()
        if i == 0 or fresh:
            c = int(np.searchsorted(np.cumsum(w / w.sum()), pick))
        out[i] = min(c, 4)
    return out


def first_hit(det: MixCusum, xs: np.ndarray) -> int | None:
    for i, x in enumerate(xs):
        det.update(float(x))
        if det.drift_detected:
            return i
    return None


def test_a_tripled_class_share_is_caught_and_the_wandering_clean_stream_is_not() -> None:
    clean = sticky_wandering(12_000, seed=8)
    shifted = sticky_wandering(12_000, seed=8, triple_at=ONSET)
    assert (clean[:ONSET] == shifted[:ONSET]).all()
    det = mix_cusum_detector(clean[:2000].astype(float), ert=1e7, seed=17)
    assert det.classes == [0, 1, 2, 3, 4]
    quiet, moved = copy.deepcopy(det), copy.deepcopy(det)
    assert first_hit(quiet, clean[2000:]) is None
    hit = first_hit(moved, shifted[2000:])
    # Pinned on this seeded stream: the tripled class (3, 0.08 -> 0.21), rising, 2,825
    # predictions in (the reference is the first 2,000).
    assert hit is not None and (hit + 2000, moved.direction, moved.classes[moved.which]) == (
        6825, 1, 3)


def test_a_class_that_vanishes_is_caught_by_its_down_side() -> None:
    xs = sticky_wandering(9000, seed=5)
    det = mix_cusum_detector(xs[:2000].astype(float), ert=1e7, seed=17)
    gone = xs[2000:].copy()
    gone[2000:][gone[2000:] == 1] = 0  # class 1 (a quarter of the mix) is never predicted again
    hit = first_hit(det, gone)
    assert hit is not None and 2000 <= hit < 4000 and det.direction == -1
    assert det.classes[det.which] == 1


def _prediction(i: int, top: str) -> Prediction:
    return Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1", frame_index=i,
                      top_class=top, confidence=0.8, scores={top: 0.8})


def test_a_checkpoint_with_the_old_chi_squared_mix_test_still_loads_and_runs() -> None:
    # Checkpoints written before output.class_mix became MixCusum carry a ChiSquaredMix
    # (type chi2_mix, signal detector_kind chi2_mix): they restore and keep watching.
    settings = MonitorSettings(reference_size=200, class_mix_reference_size=400)
    xs = sticky_wandering(1200, seed=6)
    mon = StreamMonitor("cam", "v1", settings)
    for i in range(500):
        mon.observe(_prediction(i, f"c{xs[i]}"))
    state = json.loads(json.dumps(mon.state()))
    sig = state["signals"]["output.class_mix"]
    assert sig["detector"]["type"] == "mix_cusum"
    old = class_mix_detector(np.array([mon.class_ids.id_of(f"c{x}") for x in xs[:400]]),
                             ert=sig["ert"], seed=17)
    state["signals"]["output.class_mix"] = {**sig, "detector_kind": "chi2_mix",
                                            "detector": old.state()}
    restored = StreamMonitor.from_state(state)
    assert type(restored.signals["output.class_mix"].detector).__name__ == "ChiSquaredMix"
    for i in range(500, 1200):
        restored.observe(_prediction(i, f"c{xs[i]}"))
    assert restored.signals["output.class_mix"].updates == 1200
