"""Issue #11, why two model-output shifts are still missed: the class-mix test and the confidence.

Two probes on the simulated classifier's streams (``bench.simulated_classifier``,
the cameras of ``bench.bench_outputs``), at the default budget (1 false alarm
per camera-week at 10 frames/s, split over the calibrated signals as the
monitor splits it):

``mix``: the chi-squared class-mix statistic of ``output.class_mix`` (reference:
the first 2,000 predictions) at window ``W``: its calibrated threshold, the
reference's own envelope, its largest value on a clean hour and after the
``class_mix`` / ``new_classes`` onsets (1,200 frames).

``confidence``: ``output.confidence``'s CUSUM (a ``ScalarSignal`` with the
monitor's parameters: tracking baseline, ``MIN_DURATION`` 450 predictions) fed
the running mean of the last ``M`` confidences, or (``--halflife H``) their
EWMA of half-life ``H`` predictions as the signal's own ``smooth`` does, with
tolerance floor ``F``: its tolerance, clean alarms in an hour and the delay of
the two confidence drops (``M`` 1, ``H`` 0 is the per-frame signal).
``--signal entropy`` does the same for ``output.entropy`` (seed 16).

Run from the repository root (~1 min per probe and setting)::

    python -m bench.output_probes mix --window 100
    python -m bench.output_probes confidence --mean-of 300 --floor 0.05
    python -m bench.output_probes confidence --halflife 150 --floor 0.07 --twin-k 1.2 --cameras 7
    python -m bench.output_probes model --scenes coffee:1,chelsea:2   # the real model's outputs
    python -m bench.output_probes mix_cusum --frames 50000   # MixCusum at other settings

``model``: the deployed ONNX model's own outputs on simulated-camera frames
(``bench/monitor_cache.py``; builds the missing segments, ~4,600 frames per
scene), Prediction events only at 10 frames/s into a default monitor, with
``output.confidence`` per frame and smoothed.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np

from bench.bench_outputs import CAMERAS, FPS, ONSET, WEEK_FRAMES
from bench.simulated_classifier import classifier_outputs
from processors.signal_tracker import TWIN_K

# The delay window these probes were measured with (bench_outputs' is longer since
# output.class_mix became MixCusum; the stream's draws depend on its length).
WINDOW = 1200

CLEAN = 36_000
REF = 1000  # bench_monitor's: the model probe counts clean alarms after it
WINDOW_MODEL = 600  # monitor_cache.POST: frames cached after the onset
MIX_REFERENCE = 2000
BASELINE_HALFLIFE = 300
PERSIST = 450


def _ert_each() -> float:
    from processors.monitor.catalogue import CALIBRATED

    return WEEK_FRAMES * len(CALIBRATED)


def mix_probe(seed: int, window: int) -> dict[str, float]:
    """Threshold, envelope and the largest window statistics of one camera."""
    import processors.detector_registry as registry
    from processors.detectors.windowed import window_paths

    ids: dict[int, int] = {}

    def labels(top: np.ndarray) -> np.ndarray:
        return np.array([ids.setdefault(int(c), len(ids)) for c in top])

    clean = labels(classifier_outputs(seed, CLEAN)["top"])
    old, registry.MIX_WINDOW = registry.MIX_WINDOW, window
    try:
        det = registry.class_mix_detector(clean[:MIX_REFERENCE], _ert_each(), seed=17)
    finally:
        registry.MIX_WINDOW = old

    def stats(lab: np.ndarray) -> np.ndarray:
        b = np.array([det.bin_of(x) for x in lab[MIX_REFERENCE:]])
        return window_paths("chi2", b[None, :], det.probs, det.window, det.n_bins)[0][
            det.window - 1:]

    out = {"threshold": det.threshold, "calibrated": det.calibration["calibrated_threshold"],
           "envelope": det.calibration["envelope"], "clean max": float(stats(clean).max())}
    for shift in ("class_mix", "new_classes"):
        s = stats(labels(classifier_outputs(seed, ONSET + WINDOW, shift, ONSET)["top"]))
        out[f"{shift} max"] = float(s[ONSET - MIX_REFERENCE:].max())
    return out


# mix_cusum probe: (ratio, lag blocks, half-life) settings and threshold margins tried.
MIX_SETTINGS = ((4.0, 30, 3000.0), (4.0, 20, 2000.0), (4.0, 45, 4500.0), (4.0, 30, 6000.0),
                (3.0, 30, 3000.0), (3.0, 45, 4500.0), (5.0, 30, 3000.0))
MIX_MARGINS = (1.5, 1.75, 2.0, 2.5)


def mix_cusum_probe(seed: int, clean_frames: int) -> dict[str, float | None]:
    """``MixCusum`` alone at other settings: clean peak / threshold, and the x3 share's delay.

    For each of ``MIX_SETTINGS``: calibrated on the first 2,000 predictions at
    the signal's share of the budget with margin 1 (the simulated threshold
    ``h``), the largest statistic over ``clean_frames`` clean predictions in
    units of ``h`` (never reset), and the delay of the ``class_mix`` shift
    (onset 3,000, window 6,000) at thresholds ``MIX_MARGINS`` times ``h``.
    """
    from processors.detectors.mix_cusum import MixCusum

    ids: dict[int, int] = {}
    clean = np.array([ids.setdefault(int(c), len(ids))
                      for c in classifier_outputs(seed, clean_frames)["top"]])
    shifted = np.array([ids.setdefault(int(c), len(ids)) for c in classifier_outputs(
        seed, ONSET + 6000, "class_mix", ONSET)["top"]])

    def detector(ref: np.ndarray, setting: tuple[float, int, float]) -> MixCusum:
        ratio, lag, halflife = setting
        return MixCusum.calibrated(ref, _ert_each(), bins=10, min_share=0.05, ratio=ratio,
                                   margin=1.0, block=100, lag_blocks=lag, halflife=halflife,
                                   seed=17)

    out: dict[str, float | None] = {}
    for setting in MIX_SETTINGS:
        name = "ratio {:g} lag {} half-life {:g}".format(*setting)
        det = detector(clean[:MIX_REFERENCE], setting)
        h = det.threshold
        det._threshold = float("inf")  # never fires: the clean peak
        peak = 0.0
        for x in clean[MIX_REFERENCE:]:
            det.update(x)
            peak = max(peak, det.statistic)
        out[f"{name}: clean peak / h"] = peak / h
        for margin in MIX_MARGINS:
            det = detector(shifted[:MIX_REFERENCE], setting)
            det._threshold = margin * h
            hit = None
            for i, x in enumerate(shifted[MIX_REFERENCE:], start=MIX_REFERENCE):
                det.update(x)
                if det.drift_detected and i >= ONSET:
                    hit = float(i - ONSET)
                    break
            out[f"{name}: x3 at {margin:g} h"] = hit
    return out


def running_mean(x: np.ndarray, m: int) -> np.ndarray:
    """Mean of the last ``m`` values at each index (fewer at the start).

    >>> running_mean(np.array([1.0, 3.0, 5.0]), 2).tolist()
    [1.0, 2.0, 4.0]
    """
    cs = np.cumsum(np.r_[0.0, x])
    lo = np.maximum(0, np.arange(1, x.size + 1) - m)
    return (cs[1:] - cs[lo]) / (np.arange(1, x.size + 1) - lo)


def output_values(out: dict[str, np.ndarray], signal: str) -> np.ndarray:
    """The per-frame values of ``output.<signal>`` (confidence or entropy) of a stream."""
    if signal == "confidence":
        return out["confidence"]
    from bench.simulated_classifier import top_scores
    from processors.monitor import scores_entropy

    return np.array([scores_entropy(top_scores(s)) for s in out["scores"]])


def confidence_probe(seed: int, mean_of: int, floor: float, halflife: float = 0.0,
                     signal: str = "confidence", twin_k: float = TWIN_K
                     ) -> dict[str, float | None]:
    """Tolerance, clean alarms after frame 2,400 and the drops' delays of one camera."""
    from processors.signal_tracker import ScalarSignal

    def run(out: dict[str, np.ndarray]) -> tuple[list[int], ScalarSignal]:
        s = ScalarSignal(f"output.{signal}", "cusum", ert=_ert_each(), reference_size=200,
                         cooldown=200, seed=15 if signal == "confidence" else 16,
                         tolerance=(0.0, floor), track=1.0 - 0.5 ** (1.0 / BASELINE_HALFLIFE),
                         persist=PERSIST, smooth=halflife, twin_k=twin_k)
        values = running_mean(output_values(out, signal), mean_of)
        hits = []
        for i, v in enumerate(values):
            if s.update(float(v), i) is not None:
                hits.append(i)
            if i >= 2400:
                for det in (s.detector, s.slow):  # the tracking CUSUM and its slow twin
                    if det is not None:
                        peak[0] = max(peak[0], det.statistic / det.threshold)
        return hits, s

    peak = [0.0]
    hits, sig = run(classifier_outputs(seed, CLEAN))
    clean_peak = peak[0]
    out: dict[str, float | None] = {
        "tolerance": float(getattr(sig.detector, "scale", float("nan"))),
        "clean alarms": float(sum(h >= 2400 for h in hits)),
        "clean peak / threshold": clean_peak}
    for shift in ("confidence_drop", "confidence_drop_strong"):
        h, _ = run(classifier_outputs(seed, ONSET + WINDOW, shift, ONSET))
        late = [i - ONSET for i in h if i >= ONSET]
        out[shift] = float(late[0]) if late else None
    return out


def model_probe(scene: str, seed: int, frames: int, smooth: bool) -> dict[str, float | None]:
    """The deployed model's own outputs (``bench/monitor_cache.py``) into a default monitor.

    Prediction events only, stamped at 10 frames/s: the clean stream's
    ``output.*`` alerts after frame ``REF`` and the first after the
    ``confidence_drop`` onset (the new model version's logits at temperature
    1.3), with ``output.confidence`` smoothed (the catalogue's) or per frame.
    """
    import sys
    from datetime import timedelta
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import monitor_cache as mc

    from bench.bench_outputs import T0
    from driftline.settings import MonitorSettings
    from processors.monitor import StreamMonitor
    from schemas.events import Prediction

    clean = mc.clean(scene, seed, frames)
    drop = mc.shifted(scene, seed, "confidence_drop")

    def run(out: dict[str, np.ndarray], lo: int, hi: int, mon: StreamMonitor
            ) -> list[tuple[int, str]]:
        hits = []
        for i in range(lo, hi):
            names, probs = out["score_names"][i - lo], out["score_probs"][i - lo]
            scores = {str(n): float(p) for n, p in zip(names, probs, strict=True)
                      if n and np.isfinite(p)}
            e = Prediction.model_construct(
                event_id=f"p{i}", stream_id="cam", model_version="v1",
                ts=T0 + timedelta(seconds=i / FPS), frame_id=f"f{i}", frame_index=i,
                top_class=str(out["top"][i - lo]),
                confidence=float(np.clip(out["confidence"][i - lo], 0, 1)),
                scores=scores or None, boxes=None, embedding=None)
            hits += [(i, a.signal) for a in mon.observe(e) if a.signal.startswith("output.")]
        return hits

    mon = StreamMonitor("cam", "v1", MonitorSettings())
    if not smooth:
        mon.signals["output.confidence"].adopt_smoothing(0.0)
    before = run(clean, 0, mc.ONSET, mon)
    fork = copy.deepcopy(mon)
    tol = float(getattr(mon.signals["output.confidence"].detector, "scale", float("nan")))
    after = run(clean, mc.ONSET, frames, mon)
    shifted = run(drop, mc.ONSET, mc.ONSET + mc.POST, fork)
    conf = [i - mc.ONSET for i, sig in shifted if sig == "output.confidence"]
    first = [i - mc.ONSET for i, _ in shifted]
    print(f"  {scene} {'EWMA' if smooth else 'per frame'}: alerts after the onset "
          f"{[(i - mc.ONSET, sig) for i, sig in shifted]}", flush=True)
    return {
        "clean alarms": float(sum(i >= REF for i, _ in before + after)),
        "clean confidence alarms": float(sum(i >= REF and s == "output.confidence"
                                             for i, s in before + after)),
        "confidence tolerance at the onset": tol,
        "mean confidence drop": float(clean["confidence"][mc.ONSET:mc.ONSET + mc.POST].mean()
                                      - drop["confidence"].mean()),
        "confidence_drop (output.confidence)": float(conf[0]) if conf else None,
        "confidence_drop (any output signal)": float(first[0]) if first else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("probe", choices=("mix", "mix_cusum", "confidence", "model"))
    ap.add_argument("--scenes", default="coffee:1,chelsea:2",
                    help="model: cached scene:seed,... (bench/monitor_cache.py)")
    ap.add_argument("--frames", type=int, default=4000,
                    help="model: clean frames per scene; mix_cusum: clean predictions per camera")
    ap.add_argument("--window", type=int, default=100, help="mix: chi-squared window")
    ap.add_argument("--mean-of", type=int, default=1, help="confidence: running mean of M")
    ap.add_argument("--floor", type=float, default=0.15, help="confidence: tolerance floor")
    ap.add_argument("--halflife", type=float, default=0.0,
                    help="confidence: EWMA half-life in predictions (the signal's smooth)")
    ap.add_argument("--signal", choices=("confidence", "entropy"), default="confidence")
    ap.add_argument("--twin-k", type=float, default=TWIN_K,
                    help="confidence: the slow twin's allowance in tolerances")
    ap.add_argument("--first", type=int, default=0, help="index of the first camera")
    ap.add_argument("--cameras", type=int, default=4)
    args = ap.parse_args()
    if args.probe == "model":
        print(f"# the deployed model's outputs at {FPS:g} frames/s, default monitor; clean "
              f"alarms after frame {REF}, delay within the cached {WINDOW_MODEL} frames")
        for item in args.scenes.split(","):
            scene, seed = item.split(":")
            for smooth in (False, True):
                res = model_probe(scene, int(seed), args.frames, smooth)
                print(f"{scene}, output.confidence {'EWMA' if smooth else 'per frame'}: "
                      + ", ".join(f"{k} {'miss' if v is None else f'{v:,.3g}'}"
                                  for k, v in res.items()), flush=True)
        return
    if args.probe == "mix_cusum":
        print(f"# MixCusum alone, 1 false alarm per camera-week at {FPS:g} frames/s, "
              f"{args.frames:,} clean predictions per camera")
        for seed in CAMERAS[args.first: args.first + args.cameras]:
            res = mix_cusum_probe(seed, args.frames)
            for k, v in res.items():
                print(f"camera {seed}, {k}: {'miss' if v is None else f'{v:,.3g}'}", flush=True)
        return
    print(f"# {args.probe} at {FPS:g} frames/s, 1 false alarm per camera-week; "
          + (f"window {args.window}" if args.probe == "mix"
             else f"{args.signal}, mean of {args.mean_of}, EWMA half-life {args.halflife:g}, "
             f"floor {args.floor:g}, twin k {args.twin_k:g}"))
    for seed in CAMERAS[args.first: args.first + args.cameras]:
        res = (mix_probe(seed, args.window) if args.probe == "mix"
               else confidence_probe(seed, args.mean_of, args.floor, args.halflife, args.signal,
                                    args.twin_k))
        print(f"camera {seed}: " + ", ".join(
            f"{k} {'miss' if v is None else f'{v:,.3g}'}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
