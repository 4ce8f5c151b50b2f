"""The checkpoint contract over the learners and the per-stream components.

``OutlierScorer``, ``RetrainHead``, ``ScalarSignal``, ``ClassNovelty``,
``EmbeddingReference`` and ``EmbeddingLearners`` each get a seeded stream of
what they consume (``processors.detectors.checks``): checkpointed at several
points (fresh, warming up, mid-stream, at an outlier or detection), restored
from strict JSON and fed the rest, each must behave bit for bit like the
uninterrupted original; refuse the other components' states and every
corruption naming the field; and keep its state bounded.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from processors.class_novelty import ClassNovelty
from processors.detectors.checks import check_bounded, check_refuses, check_roundtrip
from processors.embedding_learners import EmbeddingLearners
from processors.embedding_reference import EmbeddingReference
from processors.learners import OutlierScorer, RetrainHead
from processors.signal_tracker import ScalarSignal

D, K = 24, 6


@dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    inputs: list[Any]
    step: Callable[[Any, Any], Any]
    load: Callable[[dict[str, Any]], Any]
    cuts: tuple[int, ...]
    bounded_at: tuple[int, int]


def _embeddings(rng: np.random.Generator, n: int) -> np.ndarray:
    basis = np.random.default_rng(99).normal(size=(K, D))
    z = rng.normal(size=(n, K)) / np.sqrt(np.arange(1, K + 1))
    return 8.0 + z @ basis + 0.05 * rng.normal(size=(n, D))


@functools.cache
def _reference() -> tuple[EmbeddingReference, np.ndarray]:
    vectors = _embeddings(np.random.default_rng(0), 400)
    return EmbeddingReference.fit(vectors, k=K), vectors


def _stream(n: int, seed: int) -> np.ndarray:
    """Embeddings with odd frames (every 37th) and a shift from ``n // 2``."""
    rng = np.random.default_rng(seed)
    v = _embeddings(rng, n)
    v[::37] += 3.0 * rng.normal(size=(len(v[::37]), D))
    v[n // 2 :, :3] += 1.5
    return v


def _scorer_case() -> Case:
    ref, vectors = _reference()
    scorer = OutlierScorer.fit(ref.project_many(vectors), seed=1, quantile=0.98, window=100)
    xs = list(ref.project_many(_stream(600, 1)))

    def step(s: OutlierScorer, x: np.ndarray) -> tuple[Any, ...]:
        score = s.update(x)
        return repr(score), s.is_outlier, repr(s.signal_value), repr(s.outlier_rate), s.n_updates

    return Case(lambda: copy.deepcopy(scorer), xs, step, OutlierScorer.from_state,
                (0, 37, 150, 300), (150, 600))


def _labels(n: int, seed: int) -> list[tuple[np.ndarray, str, str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, K)) * 2.0
    y = rng.integers(0, 3, n)
    x = centres[y] + rng.normal(size=(n, K))
    deployed = np.where((y == 1) & (np.arange(n) > n // 3), 0, y)  # misreads class 1 later on
    return [(x[i], f"c{y[i]}", f"c{deployed[i]}") for i in range(n)]


def _head_case() -> Case:
    def step(h: RetrainHead, row: tuple[np.ndarray, str, str]) -> tuple[Any, ...]:
        h.learn(*row)
        return h.predict(row[0]), repr(h.gain), repr(h.p_value), h.retrain_advised

    return Case(lambda: RetrainHead(K, window=120, min_labels=40), _labels(600, 2), step,
                RetrainHead.from_state, (0, 50, 120, 400), (150, 600))


def _signal_case() -> Case:
    rng = np.random.default_rng(3)
    xs = (50.0 + 2.0 * rng.standard_normal(1500)).tolist()
    for i in range(900, 1500):
        xs[i] += 12.0

    def make() -> ScalarSignal:
        return ScalarSignal("quality.brightness", "cusum", ert=2000, reference_size=200,
                            cooldown=30, seed=1, tolerance=(0.0, 1.0), track=0.01)

    def step(s: ScalarSignal, iv: tuple[int, float]) -> tuple[Any, ...]:
        d = s.update(iv[1], iv[0])
        return repr(d), s.status, repr(s.zscore()), repr(s.recent_mean())

    # 100: warming up; 500: watching; 909: cooling down after the detection at 908;
    # 1000: collecting the new reference.
    return Case(make, list(enumerate(xs)), step, ScalarSignal.from_state,
                (0, 100, 500, 909, 1000), (1100, 1500))


def _novelty_case() -> Case:
    rng = np.random.default_rng(4)
    names = [f"k{i}" for i in rng.integers(0, 12, 1500)]
    for i in range(1000, 1500, 2):
        names[i] = f"new{i % 5}"

    def step(n: ClassNovelty, name: str) -> Any:
        return repr(n.update(name))

    return Case(lambda: ClassNovelty(window=50, horizon=200, warmup=300), names, step,
                ClassNovelty.from_state, (0, 100, 700, 1010), (400, 1000))


def _reference_case() -> Case:
    ref, _ = _reference()

    def step(r: EmbeddingReference, v: np.ndarray) -> tuple[Any, ...]:
        scores, proj = r.scores_and_projection(v)
        return repr(scores), proj.tobytes(), r.project(v).tobytes()

    return Case(lambda: copy.deepcopy(ref), list(_stream(60, 5)), step,
                EmbeddingReference.from_state, (0, 30), (10, 60))


def _learners_case() -> Case:
    ref, vectors = _reference()
    learners = EmbeddingLearners.fit(ref, vectors, seed=2)
    stream = _stream(900, 6)
    labels = _labels(900, 7)
    rows = []
    for i, v in enumerate(stream):
        rows.append(("observe", f"f{i}", ref.project(v)))
        if i >= 3:  # labels arrive three frames late
            _, truth, deployed = labels[i - 3]
            rows.append(("learn", f"f{i - 3}", truth, deployed))

    def step(ln: EmbeddingLearners, row: tuple[Any, ...]) -> Any:
        if row[0] == "observe":
            return repr(ln.observe(row[1], f"e-{row[1]}", row[2])), list(ln.outlier_examples)
        return repr(ln.learn(row[1], row[2], row[3]))

    return Case(lambda: copy.deepcopy(learners), rows, step, EmbeddingLearners.from_state,
                (0, 1, 200, 1100), (1200, 1790))


CASES: dict[str, Callable[[], Case]] = {
    "outlier_scorer": _scorer_case,
    "retrain_head": _head_case,
    "scalar_signal": _signal_case,
    "class_novelty": _novelty_case,
    "embedding_reference": _reference_case,
    "embedding_learners": _learners_case,
}


@functools.cache
def _case(name: str) -> Case:
    return CASES[name]()


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip_continues_bit_for_bit(name: str) -> None:
    c = _case(name)
    check_roundtrip(c.make, c.inputs, c.step, c.load, cuts=c.cuts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_refuses_other_types_versions_and_malformed_fields(name: str) -> None:
    c = _case(name)
    obj = c.make()
    for x in c.inputs[: c.cuts[-1]]:
        c.step(obj, x)
    foreign = [_case(other).make().state() for other in sorted(CASES) if other != name]
    check_refuses(c.load, obj.state(), foreign=foreign)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_does_not_grow_with_updates(name: str) -> None:
    c = _case(name)
    check_bounded(c.make, c.inputs, c.step, at=c.bounded_at)


def test_the_streams_exercise_what_the_checkpoints_hold() -> None:
    """Outliers, a retrain advice and a signal detection happen in the contract's streams."""
    sig = _case("scalar_signal")
    trace = [sig.step(s, x) for s in [sig.make()] for x in sig.inputs]
    assert any(t[0] != "None" for t in trace[900:])
    scorer = _case("outlier_scorer")
    assert any(t[1] for t in (scorer.step(s, x) for s in [scorer.make()] for x in scorer.inputs))
    head = _case("retrain_head")
    assert any(t[3] for t in (head.step(h, x) for h in [head.make()] for x in head.inputs))
