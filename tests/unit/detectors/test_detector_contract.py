"""The checkpoint contract over every registered detector kind (``processors.detectors.checks``).

Each kind is calibrated on a seeded reference of what it watches
(``KINDS[kind].takes``), fed a stream that changes at ``CHANGE`` so that it
fires, and checkpointed fresh, mid-stream, right at its first detection (the
reset still pending) and just after: the restored detector must report the
same ``statistic``, ``threshold``, ``drift_detected`` and ``change_offset``
as the uninterrupted one, bit for bit. Its state must be strict JSON,
refuse every other detector's state and every corruption naming the field,
and not grow with the number of updates.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import numpy as np
import pytest

from processors.calibration import ar1_stream
from processors.detector_registry import (
    DETECTOR_CLASSES,
    KINDS,
    detector_from_state,
    make_detector,
)
from processors.detectors import Detector, StateVersionError
from processors.detectors.checks import check_bounded, check_refuses, check_roundtrip

N_REF, N_STREAM, CHANGE = 600, 1400, 700
ERT = 2000.0
# ADWIN keeps O(max_buckets * log W) buckets, W its window length, which on a
# stationary stream grows with every update: its state grows with log W
# (measured +17 % from 700 to 2,800 updates), by design.
GROWTH = {"adwin": 0.25}


def _data(takes: str, seed: int) -> tuple[np.ndarray, list[Any]]:
    """(reference, stream) of what a kind watches; the stream changes at ``CHANGE``."""
    rng = np.random.default_rng(seed)
    changed = np.arange(N_STREAM) >= CHANGE
    if takes == "scalar":
        ref = ar1_stream(rng, N_REF, rho=0.8)
        xs = ar1_stream(rng, N_STREAM, rho=0.8) + 4.0 * changed
        return ref, xs.tolist()
    if takes == "bits":
        bits = rng.random(N_STREAM) < np.where(changed, 0.5, 0.05)
        return np.zeros(50), bits.astype(int).tolist()
    if takes == "classes":
        p = [0.5, 0.3, 0.15, 0.05]
        ref = rng.choice(4, p=p, size=N_REF).astype(float)
        xs = rng.choice(4, p=p, size=N_STREAM).astype(float)
        xs[changed & (rng.random(N_STREAM) < 0.4)] = 9.0  # a class the reference never saw
        return ref, xs.tolist()
    if takes == "projections":
        ref = ar1_stream(rng, N_REF, rho=0.9, shape=(4,)).T
        xs = ar1_stream(rng, N_STREAM, rho=0.9, shape=(4,)).T + 1.5 * changed[:, None]
        return ref, list(xs)
    if takes == "embeddings":
        scale = np.r_[np.full(4, 4.0), np.ones(12)]
        ref = rng.normal(size=(N_REF, 16)) * scale + 20.0
        xs = rng.normal(size=(N_STREAM, 16)) * scale + 20.0
        xs[changed, 10] += 8.0  # energy along a direction the reference never used
        return ref, list(xs)
    raise AssertionError(f"no test data for {takes!r}")


@functools.cache
def _calibrated(kind: str) -> tuple[Detector[Any], list[Any]]:
    # Seed 3: among others, a class mix whose normalised probabilities do not sum
    # to exactly 1.0 (a restore that renormalised them used to move the
    # chi-squared statistic's last bits).
    ref, xs = _data(KINDS[kind].takes, seed=3)
    return make_detector(kind, ref, ert=ERT, seed=3, track=0.002), xs


def _fresh(kind: str) -> Detector[Any]:
    return copy.deepcopy(_calibrated(kind)[0])


def _step(det: Detector[Any], x: Any) -> tuple[bool, str, str, int]:
    det.update(x)
    return det.drift_detected, repr(det.statistic), repr(det.threshold), det.change_offset


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_roundtrip_continues_bit_for_bit(kind: str) -> None:
    xs = _calibrated(kind)[1]
    full = [_step(det, x) for det in [_fresh(kind)] for x in xs]
    hits = [i for i, (d, _, _, _) in enumerate(full) if d]
    assert any(i >= CHANGE for i in hits), f"{kind} never fired on its change"
    first = next(i for i in hits if i >= CHANGE)
    cuts = [0, CHANGE // 2, first, first + 1, first + 2]
    again = check_roundtrip(lambda: _fresh(kind), xs, _step, detector_from_state, cuts=cuts)
    assert again == full
    # The class's own from_state restores it too.
    det = _fresh(kind)
    for x in xs[:first + 1]:
        det.update(x)
    assert type(det).from_state(json.loads(json.dumps(det.state()))).state() == det.state()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_refuses_other_types_versions_and_malformed_fields(kind: str) -> None:
    det = _fresh(kind)
    for x in _calibrated(kind)[1][:CHANGE]:
        det.update(x)
    foreign = [_fresh(k).state() for k in sorted(KINDS) if type(_fresh(k)) is not type(det)]
    check_refuses(type(det).from_state, det.state(), foreign=foreign)
    check_refuses(detector_from_state, det.state(), foreign=[])  # any registered type goes


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_state_does_not_grow_with_updates(kind: str) -> None:
    xs = _calibrated(kind)[1][:CHANGE]  # before the change: no reset shrinks it
    check_bounded(lambda: _fresh(kind), xs * 4, _step, at=(CHANGE, 4 * CHANGE),
                  slack=GROWTH.get(kind, 0.1))


def test_every_registered_class_is_reachable_from_a_kind() -> None:
    built = {type(_calibrated(kind)[0]) for kind in KINDS}
    assert built == set(DETECTOR_CLASSES)


def test_unknown_kind_and_type() -> None:
    with pytest.raises(ValueError, match="unknown detector kind 'nope'; known: adwin"):
        make_detector("nope", np.zeros(10), ert=ERT)
    with pytest.raises(StateVersionError, match="unknown detector type 'nope'"):
        detector_from_state({"type": "nope", "version": 1})
