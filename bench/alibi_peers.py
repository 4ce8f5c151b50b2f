"""alibi-detect's online detectors (MMDDriftOnline, LSDDDriftOnline; pytorch backend) as peers.

Needs the ``bench`` extra (torch + alibi-detect, see bench/README.md); nothing
else in driftline imports this module.

- Thresholds: alibi's own bootstrap on the reference (``ert``, ``window_size``,
  ``n_bootstraps``), cached under ``CACHE`` (5–190 s per configuration).
- Restart after every alarm (``reset_state``), as docs/anchors.md.
- Running alibi's ``score`` on every frame costs 0.2–1 ms, and a matched
  false-alarm rate needs many runs over the clean streams. So each stream is
  scored once without restarts (``steady`` statistic: once ``window_size``
  frames have entered the test window since the last restart, alibi's state —
  test window and kernel columns — is exactly that of the no-restart run);
  :func:`simulate` then replays alarms and restarts for any threshold scale,
  calling alibi's ``score`` itself for the ``window_size`` frames after each
  restart. With scale 1 this is alibi's own detector exactly
  (``check_hybrid`` compares it with a plain restart loop).
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "driftline" / "bench_monitor" / "alibi"
SPLIT = "r2"  # how the reference split is seeded: part of the steady-statistics cache key


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


def make_detector(kind: str, x_ref: np.ndarray, window: int, ert: float, n_bootstraps: int,
                  seed: int = 0):
    """An alibi ``MMDDriftOnlineTorch`` / ``LSDDDriftOnlineTorch`` whose thresholds are cached."""
    torch = _torch()
    from alibi_detect.cd.pytorch.lsdd_online import LSDDDriftOnlineTorch
    from alibi_detect.cd.pytorch.mmd_online import MMDDriftOnlineTorch

    base = {"mmd": MMDDriftOnlineTorch, "lsdd": LSDDDriftOnlineTorch}[kind]
    x_ref = np.ascontiguousarray(x_ref, np.float32)
    key = hashlib.sha256(x_ref.tobytes()).hexdigest()[:12]
    path = CACHE / f"{kind}-W{window}-ert{ert:g}-nb{n_bootstraps}-s{seed}-{key}.npz"

    class Cached(base):  # type: ignore[misc, valid-type]
        boot_seconds = 0.0

        def _configure_thresholds(self):
            if path.exists():
                with np.load(path) as z:
                    self.thresholds = [float(t) for t in z["thresholds"]]
                    if "H_lam_inv" in z.files:  # LSDD's regularised inverse, set by its bootstrap
                        self.H_lam_inv = torch.from_numpy(z["H_lam_inv"])
            else:
                t0 = time.perf_counter()
                super()._configure_thresholds()
                Cached.boot_seconds = time.perf_counter() - t0
                CACHE.mkdir(parents=True, exist_ok=True)
                extra = {"H_lam_inv": self.H_lam_inv.numpy()} if hasattr(self, "H_lam_inv") else {}
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, thresholds=np.asarray([float(t) for t in self.thresholds]), **extra)
                tmp.replace(path)
            # The reference split drawn next must not depend on whether the bootstrap ran.
            torch.manual_seed(seed + 1)

    torch.manual_seed(seed)
    det = Cached(x_ref, ert=ert, window_size=window, n_bootstraps=n_bootstraps, device="cpu",
                 verbose=False)
    det.boot_seconds = Cached.boot_seconds
    return det


def score(det, x: np.ndarray) -> float:
    return float(det.score(x))


def steady(det, x: np.ndarray) -> tuple[np.ndarray, float]:
    """alibi's statistic on every row of ``x`` without restarts (``det`` advances); µs per call."""
    out = np.empty(len(x))
    t0 = time.process_time()  # CPU time: torch runs one thread
    for i in range(len(x)):
        out[i] = score(det, x[i])
    return out, 1e6 * (time.process_time() - t0) / max(len(x), 1)


def snapshot(det) -> dict:
    """alibi's online state (``online_state_keys``), copied."""
    out = {}
    for k in det.online_state_keys:
        v = getattr(det, k)
        out[k] = v.clone() if hasattr(v, "clone") else copy.copy(v)
    return out


def restore(det, snap: dict) -> None:
    for k, v in snap.items():
        setattr(det, k, v.clone() if hasattr(v, "clone") else copy.copy(v))


class Sim:
    """Restart-after-alarm replay on a stream: ``x`` (frames), ``s`` (steady statistics).

    ``det`` is alibi's detector, reset at every alarm; ``mixed`` while fewer
    than ``window`` frames have entered its test window since the restart.
    """

    def __init__(self, det, window: int, scale: float) -> None:
        self.det = det
        self.window = window
        self.scale = scale
        self.steady_thr = scale * float(det.thresholds[-1])
        det.reset_state()
        self.mixed = True
        self.calls = 0

    def snapshot(self) -> tuple[bool, dict | None]:
        return self.mixed, (snapshot(self.det) if self.mixed else None)

    def restore(self, snap: tuple[bool, dict | None]) -> None:
        self.mixed = snap[0]
        if snap[1] is not None:
            restore(self.det, snap[1])

    def run(self, x: np.ndarray, s: np.ndarray, lo: int, hi: int) -> list[int]:
        """Alarms (stream indices) on frames ``lo .. hi``; state carries on."""
        alarms: list[int] = []
        i = lo
        det = self.det
        while i < hi:
            if self.mixed:
                stat = score(det, x[i])
                self.calls += 1
                if stat > self.scale * float(det.get_threshold(det.t)):
                    alarms.append(i)
                    det.reset_state()
                elif det.t >= self.window:
                    self.mixed = False
                i += 1
                continue
            over = np.flatnonzero(s[i:hi] > self.steady_thr)
            if not len(over):
                break
            i += int(over[0])
            alarms.append(i)
            det.reset_state()
            self.mixed = True
            i += 1
        return alarms


def check_hybrid(det, x: np.ndarray, s: np.ndarray, window: int) -> tuple[list[int], list[int]]:
    """Alarms of a plain alibi restart loop and of :class:`Sim` (scale 1) on the same frames.

    ``s`` must be the steady statistics of ``x`` from a reset detector.
    """
    det.reset_state()
    plain = []
    for i in range(len(x)):
        stat = score(det, x[i])
        if stat > float(det.get_threshold(det.t)):
            plain.append(i)
            det.reset_state()
    return plain, Sim(det, window, 1.0).run(x, s, 0, len(x))
