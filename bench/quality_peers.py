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


def standardised(q: dict[str, np.ndarray], keys: Sequence[str], warm: int) -> np.ndarray:
    """(n, len(keys)) values of ``keys`` z-scored on frames ``warm // 2 .. warm``."""
    names = [str(k) for k in q["keys"]]
    x = np.asarray(q["values"], dtype=float)[:, [names.index(k) for k in keys]]
    ref = x[warm // 2 : warm]
    return (x - ref.mean(axis=0)) / np.maximum(ref.std(axis=0), 1e-9)


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


def alibi_mmd_alarm_indices(q: dict[str, np.ndarray], keys: Sequence[str], warm: int, *,
                            ert: float, window: int = 20, n_bootstraps: int = 3000,
                            seed: int = 0) -> list[int]:
    """Frame indices (>= ``warm``) at which alibi-detect's ``MMDDriftOnline`` fired.

    Its reference is the standardised values of frames ``warm // 2 .. warm``
    (a vector of ``len(keys)`` per frame); alibi's own bootstrap sets its
    thresholds for ``ert`` frames between false alarms (``n_bootstraps`` must be
    much larger than ``ert``: alibi's rule; a weekly budget at 10 frames/s is
    6 million frames, out of reach). Restarted (``reset_state``) after every alarm.
    Needs the ``bench`` extra (``bench/install_peers.sh``: torch + alibi-detect).
    """
    import torch
    from alibi_detect.cd import MMDDriftOnline

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    z = standardised(q, keys, warm).astype(np.float32)
    det = MMDDriftOnline(z[warm // 2 : warm], ert=ert, window_size=window, backend="pytorch",
                         n_bootstraps=n_bootstraps, device="cpu", verbose=False)
    hits = []
    for i in range(warm, len(z)):
        if det.predict(z[i], return_test_stat=False)["data"]["is_drift"]:
            hits.append(i)
            det.reset_state()
    return hits
