"""Checkpoints: json round-trip mid-stream, then bit-for-bit continuation."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import river
from river import drift

from processors.calibration import ar1_stream
from processors.detectors import (
    Adwin,
    Cusum,
    Ddm,
    Detector,
    PageHinkley,
    StateVersionError,
    WindowedMMD,
)


def _stream(seed: int, n: int = 6000) -> list[float]:
    rng = np.random.default_rng(seed)
    x = ar1_stream(rng, n, rho=0.8)
    x[n // 3 :] += 1.5  # a change, so detections (and resets) happen on both sides
    x[2 * n // 3 :] -= 3.0
    return x.tolist()


def _clean(seed: int, n: int) -> np.ndarray:
    return ar1_stream(np.random.default_rng(seed), n, rho=0.8)


def _bits(seed: int, n: int = 6000) -> list[int]:
    """A 0/1 error stream for binary detectors: the error rate rises twice."""
    rng = np.random.default_rng(seed)
    rate = np.full(n, 0.05)
    rate[n // 3 :] = 0.3
    rate[2 * n // 3 :] = 0.6
    return (rng.random(n) < rate).astype(int).tolist()


def _trace(det: Detector, xs: list[float]) -> list[tuple[bool, float, int]]:
    out = []
    for x in xs:
        det.update(x)
        out.append((det.drift_detected, det.statistic, det.change_offset))
    return out


FACTORIES: dict[str, Callable[[], Detector]] = {
    "cusum": lambda: Cusum(mean=0.0, scale=1.0, k=0.5, h=12.0),
    "cusum_calibrated": lambda: Cusum.calibrated(_stream(1, 1000), ert=2000, n_streams=200),
    "page_hinkley": lambda: PageHinkley(threshold=20.0, delta=0.05),
    "page_hinkley_up": lambda: PageHinkley(threshold=15.0, delta=0.05, mode="up"),
    "page_hinkley_calibrated": lambda: PageHinkley.calibrated(_stream(1, 1000), ert=2000),
    "adwin": lambda: Adwin(),
    "adwin_clock1": lambda: Adwin(delta=0.01, clock=1, max_buckets=3),
    "ddm": lambda: Ddm(),
    "ddm_river_exact": lambda: Ddm(warm_start=50, guard_zero_variance=False),
    "windowed_mmd": lambda: WindowedMMD.calibrated(
        _clean(1, 1000)[:, None], ert=2000, window=30, features=32, n_streams=128
    ),
    "windowed_mmd_track": lambda: WindowedMMD.calibrated(
        _clean(1, 1000)[:, None], ert=2000, window=30, features=32, n_streams=128, track=0.01
    ),
}
# Detectors of 0/1 streams get a Bernoulli stream instead of the AR(1) one.
BINARY = {"ddm", "ddm_river_exact"}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_roundtrip_mid_stream_continues_bit_for_bit(kind: str) -> None:
    xs = _bits(7) if kind in BINARY else _stream(7)
    ref = FACTORIES[kind]()
    full = _trace(ref, xs)
    detections = [i for i, (d, _, _) in enumerate(full) if d]
    assert len(detections) >= 2, "the stream must exercise resets"
    # Checkpoint at arbitrary points and exactly at a detection (the reset
    # is still pending then: the next update must perform it).
    cuts = sorted({137, 1999, 3001, 4500, detections[0], detections[-1]})
    for cut in cuts:
        det = FACTORIES[kind]()
        _trace(det, xs[: cut + 1])
        blob = json.dumps(det.state(), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
        restored = type(det).from_state(json.loads(blob))
        assert restored.state() == det.state()
        rest = _trace(restored, xs[cut + 1 :])
        assert rest == full[cut + 1 :], f"{kind} diverged after a checkpoint at {cut}"
        assert restored.state() == ref.state()


def test_page_hinkley_matches_river_exactly() -> None:
    xs = _stream(3)
    ours = PageHinkley(threshold=20.0, delta=0.05)
    theirs = drift.PageHinkley(threshold=20.0, delta=0.05)
    for x in xs:
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        assert ours._ph._sum_increase == theirs._sum_increase


def test_adwin_matches_river_exactly() -> None:
    xs = _stream(4)
    ours, theirs = Adwin(), drift.ADWIN()
    hits = 0
    for x in xs:
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        assert ours.width == theirs.width
        hits += ours.drift_detected
    assert hits >= 2


def test_ddm_matches_river_exactly_without_the_guard() -> None:
    xs = _bits(4)
    ours, theirs = Ddm(guard_zero_variance=False), drift.binary.DDM()
    hits = 0
    for x in xs:
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
        assert ours.warning_detected == theirs.warning_detected
        hits += ours.drift_detected
    assert hits >= 2


@pytest.mark.parametrize("cls", [Cusum, PageHinkley, Adwin, Ddm])
def test_type_and_version_mismatch_raise(cls: type[Detector]) -> None:
    state = json.loads(json.dumps(cls().state()))
    with pytest.raises(StateVersionError):
        cls.from_state({**state, "version": cls.STATE_VERSION + 1})
    other = Cusum if cls is not Cusum else PageHinkley
    with pytest.raises(StateVersionError):
        other.from_state(state)


def test_adwin_refuses_other_river_version_and_corrupt_window() -> None:
    det = Adwin()
    for x in _stream(5, 300):
        det.update(x)
    state = det.state()
    with pytest.raises(StateVersionError, match="river"):
        Adwin.from_state({**state, "river_version": "0.0.1"})
    raw = base64.b64decode(state["window"])
    cut = base64.b64encode(raw[: len(raw) // 2]).decode()
    with pytest.raises(StateVersionError, match="decode"):
        Adwin.from_state({**state, "window": cut})
    with pytest.raises(StateVersionError):
        Adwin.from_state({**state, "delta": 0.5})  # window written with delta 0.002
    assert state["river_version"] == river.__version__


def test_page_hinkley_state_is_strict_json_before_any_update() -> None:
    state = PageHinkley().state()  # min_increase starts at +inf in river
    assert state["min_increase"] == "inf"
    restored = PageHinkley.from_state(json.loads(json.dumps(state, allow_nan=False)))
    assert math.isinf(restored._ph._min_increase)
