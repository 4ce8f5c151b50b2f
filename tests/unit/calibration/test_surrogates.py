"""Surrogate streams: one level offset per world."""

from __future__ import annotations

import itertools

import numpy as np

from processors.calibration.surrogates import surrogate_streams, world_bounds


def test_level_offset_is_shared_within_a_world() -> None:
    ref = np.random.default_rng(0).integers(0, 2, 500).astype(float)
    s = surrogate_streams(ref, 20, 50, rng=np.random.default_rng(1), method="iid", n_groups=4)
    # Values are 0 or 1 plus the world's offset: the fractional part is the offset.
    frac = np.round(s - np.floor(s), 12)
    bounds = world_bounds(20, 4)
    offsets = [np.unique(frac[a:b]) for a, b in itertools.pairwise(bounds)]
    assert all(o.size == 1 for o in offsets)
    assert len({float(o[0]) for o in offsets}) == 4
