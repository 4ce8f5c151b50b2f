"""Lorden's bound of the model-output bench (``bench/output_bounds.py``) and its shifts' sizes.

``bench/`` is outside the doctest paths of ``make test``: its docstring
examples run here, with the properties the bench's reading relies on.
"""

from __future__ import annotations

import doctest
import math
from types import ModuleType

import numpy as np
import pytest

import bench.bench_outputs as bo
import bench.output_bounds as ob
import bench.simulated_classifier as sc


@pytest.mark.parametrize("module", [ob, sc, bo])
def test_docstring_examples_run(module: ModuleType) -> None:
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


def test_persistence_hides_a_class_mix_change_and_bigger_changes_are_faster_to_catch() -> None:
    mix = sc.base_mix(21)
    rates = [ob.markov_kl_rate(mix, sc.tripled(mix, f)[0], sc.STICK) for f in (1.5, 3.0, 6.0)]
    assert rates == sorted(rates) and rates[0] > 0
    iid = ob.markov_kl_rate(mix, sc.tripled(mix, 3.0)[0], 0.0)
    p1 = sc.tripled(mix, 3.0)[0]
    seen = mix > 0
    assert iid == pytest.approx(float((p1[seen] * np.log(p1[seen] / mix[seen])).sum()))
    assert rates[1] < iid / 5  # an object in view for ~7 frames is ~one draw, not seven
    # The bench's x3 shift on camera 21: ~1,400 predictions at one false alarm a week.
    week = 10 * 7 * 24 * 3600
    assert 1_000 < ob.lorden_delay(week, rates[1]) < 2_000


def test_new_classes_are_certain_news_and_a_drop_of_nothing_is_never_seen() -> None:
    assert ob.markov_kl_rate(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0.85) == math.inf
    assert ob.lorden_delay(1e6, math.inf) == 0.0
    assert ob.lorden_delay(1e6, ob.mean_shift_kl_rate(0.0, 1.0)) == math.inf


def test_the_size_of_a_shift_changes_only_what_follows_the_onset() -> None:
    a = sc.classifier_outputs(22, 400, "confidence_drop", 200, size=1.0)
    b = sc.classifier_outputs(22, 400, "confidence_drop", 200)
    assert (a["confidence"][:200] == b["confidence"][:200]).all()
    assert a["confidence"][200:].mean() < b["confidence"][200:].mean()
