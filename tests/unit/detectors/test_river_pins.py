"""Pins on river's behaviour that the checkpoints rely on (river 0.26).

river has no public API for the running state of ``drift.PageHinkley`` and
``drift.binary.DDM``: their wrappers read and write the private attributes
listed in ``RIVER_PRIVATE``. These tests pin, on river itself, that those
attributes are the detectors' whole running state and that copying them into
a fresh detector continues it exactly -- so a river upgrade that renames,
adds or re-means one fails here, loudly. ADWIN and the learners go through
river's public pickle protocol; that is pinned here too.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from river import drift, stats

from processors.calibration import ar1_stream
from processors.detectors import ddm, page_hinkley
from processors.learners.river_state import dump_model, load_model, running_mean


def _stream(seed: int, n: int = 3000) -> list[float]:
    x = ar1_stream(np.random.default_rng(seed), n, rho=0.8)
    x[n // 2 :] += 1.5
    return x.tolist()


def _bits(seed: int, n: int = 3000) -> list[int]:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < np.where(np.arange(n) < n // 2, 0.1, 0.4)).astype(int).tolist()


def _restore(original: drift.PageHinkley | drift.binary.DDM, names: tuple[str, ...]):
    """A clone of ``original`` with ``names`` copied the way the wrappers copy them."""
    fresh = original.clone()
    for name in names:
        value = getattr(original, name)
        if isinstance(value, stats.Mean):
            value = running_mean(value.n, value.get())
        setattr(fresh, name, value)
    return fresh


CASES = [
    (lambda: drift.PageHinkley(threshold=20.0, delta=0.05), page_hinkley.RIVER_PRIVATE,
     {"_drift_detected", "_test_drift"}, _stream),
    (lambda: drift.PageHinkley(threshold=15.0, delta=0.05, mode="down"),
     page_hinkley.RIVER_PRIVATE, {"_drift_detected", "_test_drift"}, _stream),
    (lambda: drift.binary.DDM(), ddm.RIVER_PRIVATE, set(), _bits),
]


@pytest.mark.parametrize(("make", "private", "rest", "data"), CASES)
def test_the_private_attributes_are_the_whole_running_state(make, private, rest, data) -> None:
    det = make()
    params = set(inspect.signature(type(det)).parameters)
    assert set(vars(det)) == params | set(private) | rest, (
        f"river's {type(det).__name__} state changed: {sorted(vars(det))}"
    )


@pytest.mark.parametrize(("make", "private", "rest", "data"), CASES)
def test_copying_them_continues_river_exactly(make, private, rest, data) -> None:
    xs = data(1)
    full, det = [], make()
    for x in xs:
        det.update(x)
        full.append((det.drift_detected, getattr(det, "warning_detected", None)))
    hits = [i for i, (d, _) in enumerate(full) if d]
    assert len(hits) >= 2
    for cut in (0, 700, hits[0], hits[0] + 1):
        det = make()
        for x in xs[: cut + 1]:
            det.update(x)
        # The wrappers' own base class performs the reset a detection leaves
        # pending; river itself needs its flag for that.
        restored = _restore(det, (*private, "_drift_detected"))
        rest_trace = []
        for x in xs[cut + 1 :]:
            restored.update(x)
            rest_trace.append(
                (restored.drift_detected, getattr(restored, "warning_detected", None))
            )
        assert rest_trace == full[cut + 1 :], cut


def test_a_running_mean_is_two_numbers_restored_exactly() -> None:
    assert set(vars(stats.Mean())) == {"n", "_mean"}
    rng = np.random.default_rng(2)
    for _ in range(200):
        m = stats.Mean()
        for x in rng.normal(size=int(rng.integers(1, 50))) * 10 ** rng.uniform(-3, 3):
            m.update(float(x))
        copy = running_mean(m.n, m.get())
        assert (copy.n, copy.get()) == (m.n, m.get())
        for x in rng.normal(size=5):
            m.update(float(x))
            copy.update(float(x))
            assert copy.get() == m.get()
    empty = running_mean(0.0, 0.0)
    assert (empty.n, empty.get()) == (0.0, 0.0)


def test_adwin_pickles_exactly_through_the_restricted_unpickler() -> None:
    xs = _stream(3)
    full, det = [], drift.ADWIN(clock=8)
    for x in xs:
        det.update(x)
        full.append((det.drift_detected, det.width, det.estimation, det.variance))
    assert sum(d for d, *_ in full) >= 2
    for cut in (0, 333, 1600):
        det = drift.ADWIN(clock=8)
        for x in xs[: cut + 1]:
            det.update(x)
        restored = load_model(dump_model(det), "adwin")
        assert type(restored) is drift.ADWIN and restored.clock == det.clock == 8
        rest = []
        for x in xs[cut + 1 :]:
            restored.update(x)
            rest.append((restored.drift_detected, restored.width, restored.estimation,
                         restored.variance))
        assert rest == full[cut + 1 :], cut


@pytest.mark.parametrize("make", [drift.ADWIN, drift.PageHinkley, drift.binary.DDM])
def test_clone_is_river_s_own_reset(make) -> None:
    """The wrappers reset with ``clone()``; river resets itself on the update after a detection."""
    xs = _bits(4) if make is drift.binary.DDM else _stream(4)
    ours, theirs = make(), make()
    for x in xs:
        if ours.drift_detected:
            ours = ours.clone()
        ours.update(x)
        theirs.update(x)
        assert ours.drift_detected == theirs.drift_detected
