"""Peers for the frames-only benches: river ADWIN / PageHinkley (defaults) on quality values.

Each whole-frame quality value is standardised on the frames before ``warm``
(mean and standard deviation of frames ``warm // 2 .. warm``) and watched by
its own detector at river's defaults; the stream alarms when any of them
fires (river's detectors restart themselves after a detection).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> vals = rng.normal(size=(600, 1)); vals[400:] += 5.0
>>> hits = river_alarm_indices({"keys": np.array(["brightness"]), "values": vals},
...                            ("brightness",), 200)
>>> 400 <= hits["river ADWIN"][0] < 440, 400 <= hits["river PageHinkley"][0] < 440
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reference_stats(q: dict[str, np.ndarray], keys: Sequence[str], warm: int
                    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Mean and standard deviation of ``keys`` on frames ``warm // 2 .. warm``, their columns."""
    names = [str(k) for k in q["keys"]]
    cols = [names.index(k) for k in keys]
    ref = np.asarray(q["values"], dtype=float)[warm // 2 : warm, cols]
    return ref.mean(axis=0), np.maximum(ref.std(axis=0), 1e-9), cols


def standardised(q: dict[str, np.ndarray], keys: Sequence[str], warm: int) -> np.ndarray:
    """(n, len(keys)) values of ``keys`` z-scored on frames ``warm // 2 .. warm``."""
    mean, std, cols = reference_stats(q, keys, warm)
    return (np.asarray(q["values"], dtype=float)[:, cols] - mean) / std


def river_alarm_indices(q: dict[str, np.ndarray], keys: Sequence[str],
                        warm: int) -> dict[str, list[int]]:
    """Frame indices (>= ``warm``) at which any value's river detector fired, per detector."""
    from river import drift

    z = standardised(q, keys, warm)
    out: dict[str, list[int]] = {}
    for name, make in (("river ADWIN", drift.ADWIN), ("river PageHinkley", drift.PageHinkley)):
        hits: set[int] = set()
        for j in range(z.shape[1]):
            det = make()
            for i, v in enumerate(z[:, j].tolist()):
                det.update(v)
                if det.drift_detected and i >= warm:
                    hits.add(i)
        out[name] = sorted(hits)
    return out
