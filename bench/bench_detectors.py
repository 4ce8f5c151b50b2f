"""Detector quality: realized false alarms vs configured ERT, detection delay, cost.

Streams are AR(1) with lag-1 autocorrelation ``rho`` (0.85 by default, the
figure measured on camera embeddings in ``docs/anchors.md``) and N(0, 1)
marginals. Every run: 1,000 reference values (what each detector is
calibrated on -- river's raw detectors are not), then the monitored stream.

- False alarms: ``--seeds`` independent runs of ``--clean`` monitored clean
  values; alarms per 10,000 values and the pooled run length between alarms
  (detectors restart after each alarm, as in production).
- Delay: ``--reps`` runs per shift with 2,000 clean values and then the shift
  (mean +1 and +3 marginal sigma, sigma x2); delay = first alarm at or after
  the onset, minus the onset (misses counted when nothing fires within 5,000).
  False alarms before the onset are counted alongside: short delays bought
  with false alarms mean nothing.
- Cost: microseconds per ``update`` on the clean runs (one thread).

With ``--scene vtest`` a second table uses real model outputs on the
simulated camera (``producers/simulated_camera.py``: real ``vtest.avi`` video,
wandering crop, lighting cycle, passing occluders, sensor noise) embedded by
the packaged EfficientNet-Lite0: frames 0-999 are the reference, 1,000-6,999
clean, and for each optical drift (onset 3,000) frames 3,000-3,999 are
rendered again with the drift. Embeddings are cached under
``~/.cache/driftline/bench_detectors`` (first run: ~4 min of embedding).

Run::

    python bench/bench_detectors.py                  # ~2 min on 2 shared cores
    python bench/bench_detectors.py --quick          # smoke run, ~20 s
    python bench/bench_detectors.py --scene vtest    # + real-scene table
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from river import drift

from processors.calibration import ar1_stream
from processors.detectors import PSI, Cusum, PageHinkley, PCADetector, WindowedKS
from processors.detectors.pca import cross_fitted_distance

REF = 1000
ONSET = 2000
HORIZON = 5000


class RiverRaw:
    """river detector with defaults, uncalibrated (what users would pick instead)."""

    def __init__(self, factory: Callable[[], object]) -> None:
        self.det = factory()

    def update(self, x: float) -> None:
        self.det.update(x)

    @property
    def drift_detected(self) -> bool:
        return bool(self.det.drift_detected)


Make = Callable[[np.ndarray, float, int], object]

DETECTORS: dict[str, Make] = {
    "Cusum (calibrated, AR)": lambda ref, ert, seed: Cusum.calibrated(ref, ert, seed=seed),
    "Cusum (calibrated as i.i.d.)": lambda ref, ert, seed: Cusum.calibrated(
        ref, ert, seed=seed, surrogate="iid", inflate=False, level_noise=False
    ),
    "PageHinkley (calibrated)": lambda ref, ert, seed: PageHinkley.calibrated(ref, ert, seed=seed),
    "WindowedKS W=200 (calibrated)": lambda ref, ert, seed: WindowedKS.calibrated(
        ref, ert, window=200, seed=seed
    ),
    "PSI W=200 (calibrated)": lambda ref, ert, seed: PSI.calibrated(
        ref, ert, window=200, seed=seed
    ),
    "river ADWIN (defaults)": lambda ref, ert, seed: RiverRaw(drift.ADWIN),
    "river PageHinkley (defaults)": lambda ref, ert, seed: RiverRaw(drift.PageHinkley),
}

SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean +1σ": lambda x: x + 1.0,
    "mean +3σ": lambda x: x + 3.0,
    "σ ×2": lambda x: x * 2.0,
}


@dataclass
class Row:
    name: str
    alarms: int = 0
    clean: int = 0
    updates: int = 0
    seconds: float = 0.0
    calib_seconds: list[float] = field(default_factory=list)
    delays: dict[str, list[float]] = field(default_factory=dict)
    pre_alarms: dict[str, int] = field(default_factory=dict)


def run_clean(det: object, xs: list[float]) -> tuple[int, float]:
    alarms = 0
    t = time.perf_counter()
    for x in xs:
        det.update(x)  # type: ignore[attr-defined]
        alarms += det.drift_detected  # type: ignore[attr-defined]
    return alarms, time.perf_counter() - t


def run_shift(det: object, xs: list[float]) -> tuple[float, int]:
    """(delay or inf, false alarms before the onset)."""
    pre = 0
    for i, x in enumerate(xs):
        det.update(x)  # type: ignore[attr-defined]
        if det.drift_detected:  # type: ignore[attr-defined]
            if i >= ONSET:
                return float(i - ONSET), pre
            pre += 1
    return math.inf, pre


def bench(seeds: int, clean: int, reps: int, rho: float, ert: float) -> list[Row]:
    rows = {name: Row(name) for name in DETECTORS}
    for s in range(seeds):
        xs = ar1_stream(np.random.default_rng(1000 + s), REF + clean, rho=rho)
        ref, mon = xs[:REF], xs[REF:].tolist()
        for name, make in DETECTORS.items():
            t = time.perf_counter()
            det = make(ref, ert, s)
            rows[name].calib_seconds.append(time.perf_counter() - t)
            a, sec = run_clean(det, mon)
            r = rows[name]
            r.alarms += a
            r.clean += clean
            r.updates += clean
            r.seconds += sec
        print(f"  clean seed {s} done", flush=True)
    for shift, fn in SHIFTS.items():
        for rep in range(reps):
            xs = ar1_stream(np.random.default_rng(5000 + rep), REF + HORIZON, rho=rho)
            ref, mon = xs[:REF], xs[REF:].copy()
            mon[ONSET:] = fn(mon[ONSET:])
            mon_l = mon.tolist()
            for name, make in DETECTORS.items():
                d, pre = run_shift(make(ref, ert, rep), mon_l)
                rows[name].delays.setdefault(shift, []).append(d)
                rows[name].pre_alarms[shift] = rows[name].pre_alarms.get(shift, 0) + pre
        print(f"  shift {shift} done", flush=True)
    return list(rows.values())


def _delay(v: list[float]) -> str:
    a = np.asarray(v)
    miss = int((~np.isfinite(a)).sum())
    if miss == a.size:
        return f"miss {miss}/{a.size}"
    # Misses sort last: percentiles over them read as "> the horizon".
    a = np.where(np.isfinite(a), a, np.inf)
    med, p90 = (float(np.sort(a)[min(a.size - 1, int(q * a.size))]) for q in (0.5, 0.9))
    fmt = lambda d: f"{d:.0f}" if math.isfinite(d) else f">{HORIZON - ONSET}"  # noqa: E731
    return f"{fmt(med)} / {fmt(p90)}" + (f" (miss {miss})" if miss else "")


def table(rows: list[Row], ert: float, reps: int) -> str:
    head = (
        f"| detector | alarms / 10k clean (configured: {1e4 / ert:g}) | run length "
        "| " + " | ".join(f"delay {s} median / p90" for s in SHIFTS) + " "
        f"| false alarms in {reps}×{ONSET} pre-onset | µs/update | calibration s |"
    )
    sep = "|" + "---|" * (6 + len(SHIFTS))
    lines = [head, sep]
    for r in rows:
        per10k = r.alarms / r.clean * 1e4
        rl = r.clean / r.alarms if r.alarms else math.inf
        rl_txt = f"{rl:,.0f}" if math.isfinite(rl) else f"> {r.clean:,}"
        # The pre-onset stretch is the same stream for every shift: count it once.
        pre = r.pre_alarms[next(iter(SHIFTS))]
        us = r.seconds / r.updates * 1e6
        cal = f"{np.median(r.calib_seconds):.2f}" if "river" not in r.name else "—"
        delays = " | ".join(_delay(r.delays[s]) for s in SHIFTS)
        lines.append(
            f"| {r.name} | {per10k:.2f} | {rl_txt} | {delays} | {pre} | {us:.1f} | {cal} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- real scene

SCENE_REF, SCENE_END, SCENE_ONSET, SCENE_POST = 1000, 7000, 3000, 1000
SCENE_DRIFTS = ("blur", "brightness", "occlusion", "color_cast")
CACHE = Path.home() / ".cache" / "driftline" / "bench_detectors"


def _embed_frames(scene: str, drift: str | None, start: int, n: int) -> dict[str, np.ndarray]:
    """Embeddings and confidence of frames ``start .. start + n`` (cached)."""
    from processors.embedder import Embedder
    from producers.drift_injection import DriftSpec
    from producers.simulated_camera import SimulatedCamera

    path = CACHE / f"{scene}-s0-{drift or 'clean'}-{start}-{n}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    spec = DriftSpec(drift, onset=SCENE_ONSET) if drift else None
    cam = SimulatedCamera(scene, seed=0, drift=spec)
    cam.skip(start)
    emb = Embedder.load(threads=1)
    vecs, conf = [], []
    for lo in range(0, n, 16):
        res = emb.embed([f.rgb for f in cam.frames(min(16, n - lo))])
        vecs.append(res.embeddings.astype(np.float32))
        conf.append(np.asarray(res.confidence, np.float64))
        if lo % 800 == 0:
            print(f"  embedding {scene} {drift or 'clean'}: {lo}/{n}", flush=True)
    out = {"embeddings": np.concatenate(vecs), "confidence": np.concatenate(conf)}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


def _distance(vecs: np.ndarray, ref_mean: np.ndarray) -> np.ndarray:
    """Cosine distance of each embedding to the reference mean direction."""
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    m = ref_mean / np.linalg.norm(ref_mean)
    return 1.0 - v @ m


def scene_bench(scene: str, ert: float) -> str:
    clean = _embed_frames(scene, None, 0, SCENE_END)
    drifted = {k: _embed_frames(scene, k, SCENE_ONSET, SCENE_POST) for k in SCENE_DRIFTS}
    ref_vecs = clean["embeddings"][:SCENE_REF].astype(float)
    ref_mean = (ref_vecs / np.linalg.norm(ref_vecs, axis=1, keepdims=True)).mean(axis=0)
    dist = _distance(clean["embeddings"].astype(float), ref_mean)
    conf = clean["confidence"]
    lag1 = float(np.corrcoef(dist[:-1], dist[1:])[0, 1])

    def stream(signal: str, drift: str | None) -> list:
        if signal == "embedding":
            base = list(clean["embeddings"].astype(float))
            if drift:
                base[SCENE_ONSET : SCENE_ONSET + SCENE_POST] = list(
                    drifted[drift]["embeddings"].astype(float)
                )
            return base[SCENE_REF : SCENE_ONSET + SCENE_POST] if drift else base[SCENE_REF:]
        x = dist if signal == "distance" else conf
        if drift:
            post = drifted[drift]
            y = (
                _distance(post["embeddings"].astype(float), ref_mean)
                if signal == "distance"
                else post["confidence"]
            )
            x = np.concatenate([x[:SCENE_ONSET], y])
            return x[SCENE_REF:].tolist()
        return x[SCENE_REF:].tolist()

    ref = {
        "distance": dist[:SCENE_REF],
        "distance_cf": cross_fitted_distance(ref_vecs),
        "confidence": conf[:SCENE_REF],
        "embedding": ref_vecs,
    }
    makers: list[tuple[str, str, Callable[[], object]]] = [
        (
            "distance",
            "Cusum (calibrated, in-sample reference distances)",
            lambda: Cusum.calibrated(ref["distance"], ert),
        ),
        (
            "distance",
            "Cusum (calibrated, cross-fitted reference)",
            lambda: Cusum.calibrated(ref["distance_cf"], ert),
        ),
        (
            "distance",
            "PageHinkley (calibrated, cross-fitted reference)",
            lambda: PageHinkley.calibrated(ref["distance_cf"], ert),
        ),
        ("distance", "river ADWIN (defaults)", lambda: RiverRaw(drift.ADWIN)),
        ("distance", "river PageHinkley (defaults)", lambda: RiverRaw(drift.PageHinkley)),
        (
            "embedding",
            "PCADetector k=8 (T², SPE)",
            lambda: PCADetector.calibrated(ref["embedding"], ert, k=8),
        ),
        (
            "confidence",
            "WindowedKS W=100 (calibrated)",
            lambda: WindowedKS.calibrated(ref["confidence"], ert, window=100),
        ),
        ("confidence", "river ADWIN (defaults)", lambda: RiverRaw(drift.ADWIN)),
        ("confidence", "river PageHinkley (defaults)", lambda: RiverRaw(drift.PageHinkley)),
    ]
    n_clean = SCENE_END - SCENE_REF
    lines = [
        f"Scene `{scene}` (simulated camera, seed 0): reference frames 0-{SCENE_REF - 1}, "
        f"{n_clean:,} clean monitored frames; distance-to-reference lag-1 autocorrelation "
        f"{lag1:.2f}. Configured ERT {ert:,.0f} (= {1e4 / ert:g} alarms / 10k). Delay: frames "
        f"from onset {SCENE_ONSET} to the first alarm at or after it (>{SCENE_POST} = missed).",
        "",
        "| signal | detector | alarms / 10k clean | false alarms before onset "
        f"({SCENE_ONSET - SCENE_REF} frames) | "
        + " | ".join(f"delay {d}" for d in SCENE_DRIFTS)
        + " |",
        "|" + "---|" * (4 + len(SCENE_DRIFTS)),
    ]
    for signal, name, make in makers:
        alarms, _ = run_clean(make(), stream(signal, None))
        pre, delays = 0, []
        for d in SCENE_DRIFTS:
            det = make()
            hit, pre_d = None, 0
            for i, x in enumerate(stream(signal, d)):
                det.update(x)  # type: ignore[attr-defined]
                if det.drift_detected:  # type: ignore[attr-defined]
                    if i + SCENE_REF >= SCENE_ONSET:
                        hit = i + SCENE_REF - SCENE_ONSET
                        break
                    pre_d += 1
            pre = pre_d  # identical clean prefix for every drift
            delays.append(str(hit) if hit is not None else f">{SCENE_POST}")
        lines.append(
            f"| {signal} | {name} | {alarms / n_clean * 1e4:.1f} | {pre} | "
            + " | ".join(delays)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=6, help="independent clean runs")
    p.add_argument("--clean", type=int, default=100_000, help="clean values per run")
    p.add_argument("--reps", type=int, default=20, help="runs per shift")
    p.add_argument("--rho", type=float, default=0.85, help="lag-1 autocorrelation")
    p.add_argument("--ert", type=float, default=10_000, help="configured ERT")
    p.add_argument("--quick", action="store_true", help="2 seeds x 20k, 5 reps")
    p.add_argument("--scene", default=None, help="also run on this simulated-camera scene")
    p.add_argument("--scene-ert", type=float, default=2_000, help="ERT for the scene table")
    p.add_argument("--scene-only", action="store_true", help="skip the AR(1) table")
    a = p.parse_args()
    if a.scene_only:
        print(scene_bench(a.scene or "vtest", a.scene_ert))
        return
    if a.quick:
        a.seeds, a.clean, a.reps = 2, 20_000, 5
    t = time.perf_counter()
    rows = bench(a.seeds, a.clean, a.reps, a.rho, a.ert)
    print()
    print(
        f"AR(1) rho={a.rho}, N(0,1) marginals, reference {REF}; ERT {a.ert:,.0f}; "
        f"{a.seeds} x {a.clean:,} clean values; {a.reps} runs per shift (onset {ONSET})"
    )
    print()
    print(table(rows, a.ert, a.reps))
    if a.scene:
        print()
        print(scene_bench(a.scene, a.scene_ert))
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
