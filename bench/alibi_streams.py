"""alibi-detect's ``MMDDriftOnline`` as a peer on many streams of a camera, reset after alarms.

One detector per camera: its reference (the camera's clean frames) and
alibi's own bootstrap of the thresholds are built once
(``bench.alibi_peers.make_detector``, thresholds cached on disk), and the
detector is reused for that camera's clean stream and each of its shifted
streams through alibi's ``reset_state()`` (its online state back to ``t = 0``,
thresholds kept). Within a stream it is restarted (``reset_state``) after every
alarm, so its alarms are counted like river's self-resetting detectors.

The configuration is what alibi's bootstrap can calibrate on two shared
cores: ``n_bootstraps`` ten times the ERT (alibi's own rule: "at least an
order of magnitude larger than the ERT"), ~20 s per camera at ERT 1,000 and
window 20. A weekly budget at 10 frames/s is 6 million frames: out of reach
(it would need 60 million bootstrap samples per camera).

Needs the ``bench`` extra (``bench/install_peers.sh``: torch + alibi-detect).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

ERT = 1000.0
"""alibi's expected run length between false alarms, in frames (its ``ert``)."""
WINDOW = 20
"""alibi's test window (``window_size``)."""
BOOTSTRAPS = 10_000
"""alibi's ``n_bootstraps``: ten times ``ERT``."""
LABEL = (f"alibi-detect MMDDriftOnline (ERT {ERT:,.0f} frames, window {WINDOW}, "
         f"{BOOTSTRAPS:,} bootstraps)")


def alibi_available() -> bool:
    """Whether alibi-detect's pytorch online MMD imports here (the ``bench`` extra)."""
    try:
        from alibi_detect.cd.pytorch.mmd_online import MMDDriftOnlineTorch  # noqa: F401
    except ImportError:
        return False
    return True


def camera_detector(x_ref: np.ndarray, seed: int = 0):
    """alibi's ``MMDDriftOnlineTorch`` on rows ``x_ref`` (thresholds cached by content)."""
    from bench.alibi_peers import make_detector

    return make_detector("mmd", x_ref, WINDOW, ERT, BOOTSTRAPS, seed=seed)


def restart_alarms(det, x: np.ndarray, start: int) -> list[int]:
    """Indices (>= ``start``) at which ``det`` alarms on rows ``x[start:]``, restarted after each.

    ``det`` is reset first (``reset_state``: ``t = 0``, the test window drawn
    from its reference): alibi's ERT counts from there. The decision is
    alibi's ``predict`` rule (``score`` above ``get_threshold(t)``) without
    ``predict``'s growing history arrays.
    """
    det.reset_state()
    x = np.ascontiguousarray(x, np.float32)
    out = []
    for i in range(start, len(x)):
        if float(det.score(x[i])) > float(det.get_threshold(det.t)):
            out.append(i)
            det.reset_state()
    return out


def streams_alarms(x_ref: np.ndarray, streams: Iterable[tuple[str, np.ndarray]], start: int,
                   seed: int = 0) -> dict[str, list[int]]:
    """One camera's detector over each of its named streams: alarm indices per stream name."""
    det = camera_detector(x_ref, seed)
    return {name: restart_alarms(det, x, start) for name, x in streams}
