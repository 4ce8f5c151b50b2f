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
the running mean of the last ``M`` confidences, with tolerance floor ``F``:
its tolerance, clean alarms in an hour and the delay of the two confidence
drops (``M`` 1 is today's per-frame signal).

Run from the repository root (~1 min per probe and setting)::

    python -m bench.output_probes mix --window 100
    python -m bench.output_probes confidence --mean-of 300 --floor 0.05
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.bench_outputs import CAMERAS, FPS, ONSET, WEEK_FRAMES
from bench.simulated_classifier import classifier_outputs

# The delay window these probes were measured with (bench_outputs' is longer since
# output.class_mix became MixCusum; the stream's draws depend on its length).
WINDOW = 1200

CLEAN = 36_000
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


def running_mean(x: np.ndarray, m: int) -> np.ndarray:
    """Mean of the last ``m`` values at each index (fewer at the start).

    >>> running_mean(np.array([1.0, 3.0, 5.0]), 2).tolist()
    [1.0, 2.0, 4.0]
    """
    cs = np.cumsum(np.r_[0.0, x])
    lo = np.maximum(0, np.arange(1, x.size + 1) - m)
    return (cs[1:] - cs[lo]) / (np.arange(1, x.size + 1) - lo)


def confidence_probe(seed: int, mean_of: int, floor: float) -> dict[str, float | None]:
    """Tolerance, clean alarms after frame 2,400 and the drops' delays of one camera."""
    from processors.signal_tracker import ScalarSignal

    def run(conf: np.ndarray) -> tuple[list[int], ScalarSignal]:
        s = ScalarSignal("output.confidence", "cusum", ert=_ert_each(), reference_size=200,
                         cooldown=200, seed=15, tolerance=(0.0, floor),
                         track=1.0 - 0.5 ** (1.0 / BASELINE_HALFLIFE), persist=PERSIST)
        return [i for i, v in enumerate(running_mean(conf, mean_of))
                if s.update(float(v), i) is not None], s

    hits, sig = run(classifier_outputs(seed, CLEAN)["confidence"])
    out: dict[str, float | None] = {
        "tolerance": float(getattr(sig.detector, "scale", float("nan"))),
        "clean alarms": float(sum(h >= 2400 for h in hits))}
    for shift in ("confidence_drop", "confidence_drop_strong"):
        h, _ = run(classifier_outputs(seed, ONSET + WINDOW, shift, ONSET)["confidence"])
        late = [i - ONSET for i in h if i >= ONSET]
        out[shift] = float(late[0]) if late else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("probe", choices=("mix", "confidence"))
    ap.add_argument("--window", type=int, default=100, help="mix: chi-squared window")
    ap.add_argument("--mean-of", type=int, default=1, help="confidence: running mean of M")
    ap.add_argument("--floor", type=float, default=0.15, help="confidence: tolerance floor")
    ap.add_argument("--cameras", type=int, default=4)
    args = ap.parse_args()
    print(f"# {args.probe} at {FPS:g} frames/s, 1 false alarm per camera-week; "
          + (f"window {args.window}" if args.probe == "mix"
             else f"mean of {args.mean_of}, floor {args.floor:g}"))
    for seed in CAMERAS[: args.cameras]:
        res = (mix_probe(seed, args.window) if args.probe == "mix"
               else confidence_probe(seed, args.mean_of, args.floor))
        print(f"camera {seed}: " + ", ".join(
            f"{k} {'miss' if v is None else f'{v:,.3g}'}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
