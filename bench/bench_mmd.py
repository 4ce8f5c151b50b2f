"""Windowed MMD on camera embeddings: calibration cost, false alarms, detection delay.

``processors.detectors.WindowedMMD`` on the projections of EfficientNet-Lite0
embeddings on the stream's reference PCA basis, as the monitor would feed it:
``EmbeddingReference.fit`` on the first ``REF`` (200, ``MonitorSettings.
reference_size``) frames of ``SimulatedCamera("coffee", seed=1)``,
``WindowedMMD.calibrated`` on those 200 frames' projections at ``--ert``.

- False alarms: frames ``REF .. --frames`` of the clean stream (every alarm is
  false), per 10,000 frames, detector restarted after each alarm as in
  production (the window empties).
- Delay: the same camera with a shift injected at frame 3000 (blur, colour
  cast, brightness, occlusion, scene change); frames from the onset to the
  first alarm at or after it, ``miss`` when nothing fires within the 600
  shifted frames. Alarms before the onset are counted as ``pre``.
- Rows: ``k`` PCA components (8 = the monitor's ``pca_components``), per
  component scale (``standardise``) and the tracking reference's half-life.
  Times are CPU seconds (2 cores shared with other jobs: wall time is higher).
- Control: AR(1) rho=0.9 streams in 8 dims (reference 1,000), 50,000 clean
  updates: realized false alarms per 10k vs ``10,000 / ert``.

Embeddings come from ``bench/monitor_cache.py`` (shared with ``bench_monitor.py``;
built on first use).

Run::

    OMP_NUM_THREADS=1 python -m bench.bench_mmd    # from the repository root
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench import monitor_cache as mc
from processors.calibration import ar1_stream
from processors.detectors import WindowedMMD
from processors.embedding_reference import EmbeddingReference

REF = 200
SCENE, SEED = "coffee", 1
ONSET = mc.ONSET
SHIFTS = ("blur", "color_cast", "brightness", "occlusion", "scene_change")


def features(shift: str | None, n: int) -> np.ndarray:
    """EfficientNet-Lite0 embeddings from ``bench/monitor_cache.py`` (the worker's own path).

    Clean: frames ``0 .. n``; shifted: the ``POST`` frames from ``ONSET`` of the
    same camera with ``shift`` injected there (built and cached on first use).
    """
    if shift is None:
        return mc.clean(SCENE, SEED, n)["embeddings"]
    return mc.shifted(SCENE, SEED, shift)["embeddings"]


def alarms(det: WindowedMMD, x: np.ndarray) -> tuple[list[int], float]:
    """Alarm indices of ``det`` over the rows of ``x`` and microseconds per update."""
    hits = []
    t0 = time.process_time()
    for i, v in enumerate(x):
        det.update(v)
        if det.drift_detected:
            hits.append(i)
    return hits, (time.process_time() - t0) / max(1, len(x)) * 1e6


def ar_control(ert: float, n: int = 50_000, seeds: int = 2) -> tuple[float, float]:
    """(realized false alarms per 10k, calibration seconds) on AR(1) rho=0.9, k=8."""
    total, secs = 0, 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        ref = ar1_stream(rng, 1000, rho=0.9, shape=(8,)).T
        t0 = time.process_time()
        det = WindowedMMD.calibrated(ref, ert, seed=seed)
        secs += time.process_time() - t0
        total += len(alarms(det, ar1_stream(rng, n, rho=0.9, shape=(8,)).T)[0])
    return total / (seeds * n) * 1e4, secs / seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--ert", type=float, default=100_000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--features", type=int, default=128)
    args = ap.parse_args()
    clean = features(None, args.frames)
    shifted = {s: np.concatenate([clean[:ONSET], features(s, args.frames)]) for s in SHIFTS}

    print(f"WindowedMMD, ert={args.ert:g}, reference {REF} frames of {SCENE!r}; "
          f"{args.frames - REF} clean frames monitored")
    head = ["k", "W", "D", "scale", "half-life", "threshold", "fit", "calib cpu s", "us/upd",
            "FA/10k", "budget/10k"]
    head += [f"{s} pre/delay" for s in SHIFTS]
    print(" | ".join(head))
    w, d = args.window, args.features
    configs = [(k, w, d, sc, hl) for k in (8, 16) for sc in ("marginal", "long_run")
               for hl in (0, 300)]
    # Window and feature count around the defaults (k=16, marginal, half-life 300).
    configs += [(16, ww, dd, "marginal", 300) for ww, dd in ((30, d), (100, d), (w, 64))]
    projections: dict[int, tuple[EmbeddingReference, np.ndarray]] = {}
    for k, w, d, standardise, halflife in configs:
        if k not in projections:
            ref = EmbeddingReference.fit(clean[:REF], k=k)
            projections[k] = ref, ref.project_many(clean)
        ref, proj = projections[k]
        track = 0.0 if halflife == 0 else 1.0 - 0.5 ** (1.0 / halflife)
        t0 = time.process_time()
        det = WindowedMMD.calibrated(proj[:REF], args.ert, window=w, features=d, track=track,
                                     standardise=standardise)
        secs = time.process_time() - t0
        start = det.state()
        hits, us = alarms(det, proj[REF:])
        row = [str(k), str(w), str(d), standardise, str(halflife or "fixed"),
               f"{det.threshold:.3f}", det.calibration["fit"]["method"][:5], f"{secs:.2f}",
               f"{us:.0f}", f"{len(hits) / len(proj[REF:]) * 1e4:.1f}", f"{1e4 / args.ert:.2f}"]
        for s in SHIFTS:
            q = ref.project_many(shifted[s])[REF:]
            h, _ = alarms(WindowedMMD.from_state(start), q)
            pre = sum(i + REF < ONSET for i in h)
            post = [i + REF - ONSET for i in h if i + REF >= ONSET]
            row.append(f"{pre}/{post[0] if post else 'miss'}")
        print(" | ".join(row), flush=True)
    for ert in (2_000, 10_000):
        fa, secs = ar_control(ert)
        print(f"AR(1) rho=0.9 k=8 control: ert={ert:g} -> {fa:.1f} FA/10k "
              f"(budget {1e4 / ert:.1f}), calibration {secs:.2f} s CPU")


if __name__ == "__main__":
    main()
