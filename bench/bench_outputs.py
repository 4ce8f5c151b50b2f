"""Issue #11, model-output shifts: class-mix change and confidence drop, against river and alibi.

Prediction events at 10 frames/s from a seeded simulated classifier
(``bench.simulated_classifier``: a slowly wandering class mix, classes that
persist over frames, a confidence with a slow lighting swing), stamped at the
frame rate so the monitor measures its rate and turns the weekly budget into
an ERT. Each camera (seed) has a clean stream (false alarms per camera-week
after calibration) and one stream per shift from ``ONSET`` (the same draws
before the onset).

Peers on the same streams: river ADWIN / PageHinkley (defaults) on the
confidence, the entropy of the top-5 scores and the one-hot top class (each
standardised on frames ``WARM // 2 .. WARM``; the stream alarms when any
fires), and alibi-detect's ``MMDDriftOnline`` on the 12 class scores (one
detector per camera, reference every 4th frame of 400..2400, reset between
streams; ``bench.alibi_streams``).

Run from the repository root (~4 min of CPU; 18 min wall at load ~10 on 2 cores)::

    python -m bench.bench_outputs

``--long-frames N``: instead, one clean stream of ``N`` frames per camera
through the default monitor at budgets 1 and 100 per camera-week only (no
peers): false alarms of the output signals over camera-days (864,000 frames
per camera x 7 cameras = 1 camera-week at 10 frames/s)::

    python -m bench.bench_outputs --long-frames 864000 --workers 2

``--sensitivity``: instead, each output shift at several sizes (the class's
share x1.5 to x6, the confidence's logit -0.3 to -1.5) on the seven cameras
and on fourteen more (28-41) that no parameter was chosen on, at the default
budget: detection rate and delay against Lorden's lower bound
(``bench.output_bounds``) for the stream's change::

    python -m bench.bench_outputs --sensitivity --workers 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bench.bench_quality import signal_counts
from bench.output_bounds import (
    long_run_variance,
    lorden_delay,
    markov_kl_rate,
    mean_shift_kl_rate,
)
from bench.simulated_classifier import (
    CLASSES,
    SHIFTS,
    STICK,
    base_mix,
    classifier_outputs,
    top_scores,
    tripled,
)

if TYPE_CHECKING:
    from schemas.events import Alert, Prediction

FPS = 10.0
WEEK_FRAMES = FPS * 7 * 24 * 3600
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# The class-mix reference is 2,000 predictions (CLASS_MIX_REFERENCE_SIZE): calibrated by 2,400.
WARM = 2400
ONSET = 3000
# Delay window after the onset. 1,200 frames until output.class_mix became MixCusum:
# a class tripling on a sticky, wandering mix takes it 1,000-3,000 frames at the
# default budget (bench/README.md), so output shifts get 6,000 frames (10 min).
WINDOW = 6000
# Cameras 21-24 chose the mix test's and the averaged confidence's parameters; 25-27 did not.
TUNING = (21, 22, 23, 24)
LONG_BUDGETS = (1.0, 100.0)
CAMERAS = tuple(range(21, 28))
BUDGETS = (1.0, 100.0, 10_000.0)
LOOSE = 10_000.0  # the shift table's second driftline column: the loosest budget
ALIBI_REF = slice(400, 2400, 4)
# --sensitivity: sizes per shift (class_mix: the share's factor; confidence: the logit
# drop) and fourteen cameras more, none of which chose a parameter.
MIX_FACTORS = (1.5, 2.0, 3.0, 4.0, 6.0)
CONF_DROPS = (0.3, 0.6, 1.0, 1.5)
EXTRA_CAMERAS = tuple(range(28, 42))
# Batch of the confidence's long-run variance (Lorden's bound): 12 correlation times
# of the lighting swing (bench.simulated_classifier.SWING_TAU).
LRV_BATCH = 600
# The windows of the realized share ratio (``realized_ratio``): 5 minutes each side.
REALIZED_W = 3000


def predictions(out: dict[str, np.ndarray], stream_id: str = "cam",
                model_version: str = "v1") -> Iterator[Prediction]:
    """One ``Prediction`` per frame of ``out``, stamped at ``FPS`` from ``T0`` (unvalidated).

    Event ids ``p{i}``, frame ids ``f{i}``, frame indices ``i``: what every
    monitor of this bench sees, in process or (``bench.bench_outputs_worker``)
    on the wire.
    """
    from schemas.events import Prediction

    for i in range(len(out["top"])):
        yield Prediction.model_construct(
            event_id=f"p{i}", stream_id=stream_id, model_version=model_version,
            ts=T0 + timedelta(seconds=i / FPS), frame_id=f"f{i}", frame_index=i,
            top_class=CLASSES[int(out["top"][i])], confidence=float(out["confidence"][i]),
            scores=top_scores(out["scores"][i]), boxes=None, embedding=None)


def monitor_run(out: dict[str, np.ndarray], budget: float = 1.0, stream_id: str = "cam",
                model_version: str = "v1", min_duration: float | None = None) -> list[Alert]:
    """Every alert event of a default monitor over ``predictions(out)``, in order.

    The firing alerts ``StreamMonitor.observe`` returns, each followed by the
    lifecycle events (``resolved``) the same event caused, as
    ``processors.router`` emits them. ``min_duration``: the monitor's
    ``MIN_DURATION`` (seconds) instead of its default.
    """
    from driftline.settings import MonitorSettings
    from processors.monitor import StreamMonitor

    hold = {} if min_duration is None else {"min_duration": min_duration}
    mon = StreamMonitor(stream_id, model_version,
                        MonitorSettings(false_alarms_per_week=budget, **hold))
    alerts: list[Alert] = []
    for e in predictions(out, stream_id, model_version):
        alerts += mon.observe(e)
        alerts += mon.controls.drain()
    return alerts


def monitor_alerts(out: dict[str, np.ndarray], budget: float = 1.0,
                   min_duration: float | None = None) -> list[tuple[str, int, int]]:
    """(signal, change frame, detected frame) of every alert of a default monitor."""
    return [(a.signal, a.change_frame_index or 0, a.detected_frame_index or 0)
            for a in monitor_run(out, budget, min_duration=min_duration)
            if a.lifecycle == "firing"]


def peer_values(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """River's inputs: confidence, top-5 entropy, one-hot top class (``keys``, ``values``)."""
    from processors.monitor import scores_entropy

    ent = np.array([scores_entropy(top_scores(s)) for s in out["scores"]])
    onehot = np.eye(len(CLASSES))[out["top"]]
    return {"keys": np.array(["confidence", "entropy", *CLASSES]),
            "values": np.column_stack([out["confidence"], ent, onehot])}


def shift_bound(seed: int, shift: str, shifted: dict[str, np.ndarray],
                clean: dict[str, np.ndarray], clean_hour: np.ndarray,
                size: float | None = None) -> tuple[float, float]:
    """(effect, Lorden's bound in frames) of one camera's shift at one false alarm per week.

    The effect is the changed class's share factor after renormalising
    (class-mix shifts) or the drop of the mean confidence over the delay
    window against ``clean``, the clean stream of the same draws (confidence
    drops; its long-run variance from ``clean_hour``, the camera's clean
    hour's confidences). The bound is
    ``bench.output_bounds.lorden_delay`` for a detector spending the stream's
    whole weekly budget on this one change and knowing it exactly
    (``new_classes``: 0, a class never seen before is certain news).
    """
    mix0 = base_mix(seed)
    if shift == "new_classes":
        return float("nan"), 0.0
    if shift == "class_mix":
        mix1, c = tripled(mix0, 3.0 if size is None else size)
        return float(mix1[c] / mix0[c]), lorden_delay(WEEK_FRAMES,
                                                     markov_kl_rate(mix0, mix1, STICK))
    span = slice(ONSET, ONSET + WINDOW)
    delta = float(clean["confidence"][span].mean() - shifted["confidence"][span].mean())
    lrv = long_run_variance(clean_hour[WARM:], LRV_BATCH)
    return delta, lorden_delay(WEEK_FRAMES, mean_shift_kl_rate(delta, lrv))


def _camera(args: tuple[int, int, tuple[float, ...], bool, float | None]) -> dict:
    """Every detector on one camera's clean and shifted streams (run in a worker process)."""
    from bench.quality_peers import river_alarm_indices

    seed, clean_frames, budgets, alibi, hold = args
    streams: dict[str | None, dict[str, np.ndarray]] = {
        None: classifier_outputs(seed, clean_frames)}
    for shift in SHIFTS:
        streams[shift] = classifier_outputs(seed, ONSET + WINDOW, shift, ONSET)
    res: dict = {"seed": seed, "driftline": {}, "river": {}, "alibi": None, "cpu": {}}
    t0 = time.process_time()
    for b in budgets:
        res["driftline"][(None, b)] = monitor_alerts(streams[None], b, hold)
    for shift in SHIFTS:
        for b in dict.fromkeys((1.0, LOOSE)):
            res["driftline"][(shift, b)] = monitor_alerts(streams[shift], b, hold)
    res["cpu"]["driftline"] = time.process_time() - t0
    t0 = time.process_time()
    keys = tuple(str(k) for k in peer_values(streams[None])["keys"])
    for name, out in streams.items():
        res["river"][name] = river_alarm_indices(peer_values(out), keys, WARM)
    res["cpu"]["river"] = time.process_time() - t0
    if alibi:
        from bench.alibi_streams import streams_alarms

        t0 = time.process_time()
        res["alibi"] = streams_alarms(
            streams[None]["scores"][ALIBI_REF],
            [(str(name), out["scores"]) for name, out in streams.items()], WARM)
        res["cpu"]["alibi"] = time.process_time() - t0
    res["mean_conf"] = {str(k): float(v["confidence"][ONSET:].mean())
                        for k, v in streams.items()}
    # The shifted streams' clean twin (the clean hour is longer: other draws).
    same = classifier_outputs(seed, ONSET + WINDOW)
    res["bound"] = {shift: shift_bound(seed, shift, streams[shift], same,
                                       streams[None]["confidence"])[1]
                    for shift in SHIFTS}
    return res


def _long(args: tuple[int, int, float | None]) -> dict:
    """One camera's long clean stream at ``LONG_BUDGETS`` (run in a worker process)."""
    seed, frames, hold = args
    t0 = time.process_time()
    out = classifier_outputs(seed, frames)
    gen = time.process_time() - t0
    t0 = time.process_time()
    alerts = {b: monitor_alerts(out, b, hold) for b in LONG_BUDGETS}
    return {"seed": seed, "alerts": alerts, "gen_cpu": gen,
            "monitor_cpu": time.process_time() - t0}


def long_table(cams: tuple[int, ...], frames: int, workers: int,
               min_duration: float | None = None) -> None:
    """False alarms per camera-week over long clean streams, tuning and evaluation cameras."""
    t0 = time.time()
    with ProcessPoolExecutor(workers) as ex:
        res = list(ex.map(_long, [(s, frames, min_duration) for s in cams]))
    gen = sum(r["gen_cpu"] for r in res)
    mon = sum(r["monitor_cpu"] for r in res)
    n = len(cams) * frames
    print(f"# {len(cams)} cameras x {frames:,} frames in {time.time() - t0:.0f} s wall; CPU s: "
          f"simulation {gen:.0f} ({gen / n * 1e6:.1f} us/frame), monitor {mon:.0f} "
          f"({mon / n / len(LONG_BUDGETS) * 1e6:.1f} us/prediction)")
    print(f"\n## Long clean run, alarms after frame {WARM}\n")
    print("| cameras | budget / camera-week | monitored frames | camera-weeks | alarms | "
          "alarms / camera-week (realized) | alarms (signal: camera, frame) |")
    print("|---|---|---|---|---|---|---|")
    groups = (("tuning 21-24", [r for r in res if r["seed"] in TUNING]),
              ("evaluation 25-27", [r for r in res if r["seed"] not in TUNING]), ("all", res))
    for label, rows in groups:
        if not rows:
            continue
        monitored = len(rows) * (frames - WARM)
        weeks = monitored / WEEK_FRAMES
        for b in LONG_BUDGETS:
            hits = [(a[0], r["seed"], a[2]) for r in rows for a in r["alerts"][b] if a[2] >= WARM]
            where = ", ".join(f"{s.removeprefix('output.')}: {c}, {f}" for s, c, f in hits[:8])
            print(f"| {label} | {b:g} | {monitored:,} | {weeks:.2f} | {len(hits)} | "
                  f"{len(hits) / weeks:.1f} | {where or '—'} |", flush=True)


def realized_ratio(top: np.ndarray, c: int, at: int = ONSET, w: int = 0) -> float:
    """Share of class ``c`` in the ``w`` predictions from ``at`` over its share in the ``w`` before.

    ``w`` defaults to ``REALIZED_W``. How much the class's share really moved
    around ``at``, the mix's wander included (the shift's nominal factor is
    what it would be without the wander).

    >>> realized_ratio(np.array([0, 1, 0, 0, 1, 1, 1, 0]), 1, at=4, w=4)
    3.0
    """
    w = w or REALIZED_W
    before = max(int((top[at - w:at] == c).sum()), 1)
    return float((top[at:at + w] == c).sum() / before)


def _sensitivity(seed: int) -> dict:
    """One camera's output shifts at every size of ``MIX_FACTORS`` / ``CONF_DROPS`` (a worker)."""
    t0 = time.process_time()
    clean = classifier_outputs(seed, ONSET + WINDOW)
    hour = classifier_outputs(seed, 36_000)
    res: dict = {"seed": seed, "driftline": {(None, 1.0): monitor_alerts(clean)}, "rows": {}}
    for shift, sizes in (("class_mix", MIX_FACTORS), ("confidence_drop", CONF_DROPS)):
        for size in sizes:
            out = classifier_outputs(seed, ONSET + WINDOW, shift, ONSET, size)
            res["driftline"][(shift, 1.0)] = monitor_alerts(out)
            first = driftline_first(res, shift, 1.0)
            effect, bound = shift_bound(seed, shift, out, clean, hour["confidence"], size)
            # What the stream did, the wander included (a confidence drop's effect is).
            realized = (realized_ratio(out["top"], tripled(base_mix(seed))[1])
                        if shift == "class_mix" else effect)
            res["rows"][(shift, size)] = (effect, bound, None if first is None else first[1],
                                          realized)
    clean_top = hour["top"]
    res["clean_ratio"] = max(realized_ratio(clean_top, int(c), at)
                             for c in np.flatnonzero(base_mix(seed) >= 0.05)
                             for at in range(REALIZED_W, clean_top.size - REALIZED_W + 1,
                                             REALIZED_W // 3))
    res["cpu"] = time.process_time() - t0
    return res


def sensitivity_table(workers: int) -> None:
    """Detection rate and delay per shift size, tuning and unseen cameras, against the bound."""
    cams = CAMERAS + EXTRA_CAMERAS
    t0 = time.time()
    with ProcessPoolExecutor(workers) as ex:
        res = list(ex.map(_sensitivity, cams))
    print(f"# {len(cams)} cameras in {time.time() - t0:.0f} s wall, "
          f"{sum(r['cpu'] for r in res):.0f} s CPU")
    print(f"\n## Output shifts by size from frame {ONSET} (default budget: 1 false alarm per "
          f"camera-week), delay within {WINDOW} frames\n")
    clean = sorted(r["clean_ratio"] for r in res)
    print(f"Clean hour: the largest realized share ratio of any class (>= 5%) over "
          f"{REALIZED_W}-prediction windows (every {REALIZED_W // 3}), per camera: median "
          f"x{np.median(clean):.2f}, range x{clean[0]:.2f}-x{clean[-1]:.2f}.\n")
    print("| shift | size | effect (median) | detected | tuning 21-24 | evaluation 25-41 | "
          "median / p90 delay | Lorden bound (median) | delay / bound (median) | "
          "realized effect, detected / missed (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shift, sizes, unit in (("class_mix", MIX_FACTORS, "share x"),
                               ("confidence_drop", CONF_DROPS, "logit -")):
        for size in sizes:
            rows = [(r["seed"], *r["rows"][(shift, size)]) for r in res]
            hit = [d for _, _, _, d, _ in rows if d is not None]
            ratio = [d / b for _, _, b, d, _ in rows if d is not None and b > 0]
            mix = shift == "class_mix"

            def med(v: list[float], mix: bool = mix) -> str:
                return "—" if not v else (f"x{np.median(v):.2f}" if mix
                                          else f"-{np.median(v):.3f}")

            shown = med([e for _, e, _, _, _ in rows])
            realized = (med([x for _, _, _, d, x in rows if d is not None]) + " / "
                        + med([x for _, _, _, d, x in rows if d is None]))
            delay = (f"{int(np.median(hit))} / {int(np.percentile(hit, 90))}" if hit else "—")
            print(f"| {shift} | {unit}{size:g} | {shown} | {len(hit)}/{len(rows)} | "
                  f"{_fmt([d for s, _, _, d, _ in rows if s in TUNING])} | "
                  f"{_fmt([d for s, _, _, d, _ in rows if s not in TUNING])} | {delay} | "
                  f"{np.median([b for _, _, b, _, _ in rows]):,.0f} | "
                  f"{f'{np.median(ratio):.1f}' if ratio else '—'} | {realized} |", flush=True)


def _first(hits: list[int], lo: int, hi: int) -> int | None:
    late = [h - lo for h in hits if lo <= h < hi]
    return late[0] if late else None


def driftline_first(r: dict, shift: str, budget: float) -> tuple[str, int] | None:
    """The first alert within the window after the onset the clean stream did not raise too."""
    clean = {(a[0], a[1]) for a in r["driftline"][(None, budget)]}
    after = [a for a in r["driftline"][(shift, budget)]
             if ONSET <= a[2] < ONSET + WINDOW and (a[0], a[1]) not in clean]
    if not after:
        return None
    first = min(after, key=lambda a: a[2])
    return first[0], first[2] - ONSET


def _fmt(delays: list[int | None]) -> str:
    hit = [d for d in delays if d is not None]
    return f"{len(hit)}/{len(delays)}, {int(np.median(hit)) if hit else '—'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clean-frames", type=int, default=36_000, help="per camera (1 h)")
    ap.add_argument("--cameras", type=int, default=len(CAMERAS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-alibi", action="store_true")
    ap.add_argument("--long-frames", type=int, default=0,
                    help="only the long clean run: frames per camera (864000 = 1 camera-day)")
    ap.add_argument("--sensitivity", action="store_true",
                    help="only the shifts by size, on 21 cameras, against Lorden's bound")
    ap.add_argument("--min-duration", type=float, default=None,
                    help="the monitor's MIN_DURATION in seconds (default: its default, 45)")
    args = ap.parse_args()
    if args.min_duration is not None:
        print(f"# MIN_DURATION {args.min_duration:g} s")
    if args.sensitivity:
        sensitivity_table(args.workers)
        return
    if args.long_frames:
        long_table(CAMERAS[: args.cameras], args.long_frames, args.workers, args.min_duration)
        return
    alibi = not args.no_alibi
    if alibi:
        from bench.alibi_streams import alibi_available

        alibi = alibi_available()
        if not alibi:
            print("# alibi-detect is not importable (bench/install_peers.sh): its rows are left "
                  "out")
    cams = CAMERAS[: args.cameras]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        res = list(ex.map(_camera, [(s, args.clean_frames, BUDGETS, alibi, args.min_duration)
                                    for s in cams]))
    cpu = {k: sum(r["cpu"].get(k, 0.0) for r in res) for k in ("driftline", "river", "alibi")}
    print(f"# {len(cams)} cameras in {time.time() - t0:.0f} s; CPU s: "
          + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))

    frames = len(cams) * (args.clean_frames - WARM)
    weeks = frames / WEEK_FRAMES
    print(f"\n## Clean classifier outputs at 10 frames/s, alarms after calibration (frame {WARM})"
          "\n")
    print("| detector | budget / camera-week | streams | monitored frames (camera-hours) | "
          "alarms | alarms / camera-week (realized) | signals |")
    print("|---|---|---|---|---|---|---|")
    for b in BUDGETS:
        alarms = [a for r in res for a in r["driftline"][(None, b)] if a[2] >= WARM]
        print(f"| driftline | {b:g} | {len(cams)} | {frames:,} ({frames / FPS / 3600:.1f}) | "
              f"{len(alarms)} | {len(alarms) / weeks:,.0f} | {signal_counts(alarms)} |")
    for peer in ("river ADWIN", "river PageHinkley"):
        c = sum(len(r["river"][None][peer]) for r in res)
        print(f"| {peer} (defaults) | — | {len(cams)} | {frames:,} ({frames / FPS / 3600:.1f}) | "
              f"{c} | {c / weeks:,.0f} | any of confidence, entropy, {len(CLASSES)} one-hot "
              "classes |")
    if alibi:
        from bench.alibi_streams import ERT, LABEL

        c = sum(len(r["alibi"]["None"]) for r in res)
        print(f"| {LABEL} | {WEEK_FRAMES / ERT:,.0f} | {len(cams)} | {frames:,} "
              f"({frames / FPS / 3600:.1f}) | {c} | {c / weeks:,.0f} | the {len(CLASSES)} class "
              "scores as one vector |")

    print(f"\n## Output shifts from frame {ONSET} (default budget), delay within {WINDOW} "
          "frames\n")
    mean_conf = {k: np.mean([r["mean_conf"][k] for r in res]) for k in res[0]["mean_conf"]}
    print("Mean confidence after the onset: " + ", ".join(
        f"{k if k != 'None' else 'clean'} {v:.3f}" for k, v in mean_conf.items()) + ".\n")
    print("| shift | detected | median delay | p90 delay | Lorden bound (median) | tuning 21-24 | "
          "evaluation 25-27 | river ADWIN | river PageHinkley | "
          + ("alibi MMD | " if alibi else "") + f"driftline at {LOOSE:,.0f} / week | "
          "first signal (camera, delay) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if alibi else ""))
    for shift in SHIFTS:
        delays, firsts = [], []
        split: dict[bool, list[int | None]] = {True: [], False: []}
        peers: dict[str, list[int | None]] = {"river ADWIN": [], "river PageHinkley": []}
        if alibi:
            peers["alibi"] = []
        peers["loose"] = []
        for r in res:
            first = driftline_first(r, shift, 1.0)
            split[r["seed"] in TUNING].append(None if first is None else first[1])
            if first is not None:
                delays.append(first[1])
                firsts.append(f"{first[0].removeprefix('output.')} ({r['seed']}, {first[1]})")
            else:
                firsts.append(f"miss ({r['seed']})")
            loose = driftline_first(r, shift, LOOSE)
            peers["loose"].append(None if loose is None else loose[1])
            for p in ("river ADWIN", "river PageHinkley"):
                peers[p].append(_first(r["river"][shift][p], ONSET, ONSET + WINDOW))
            if alibi:
                peers["alibi"].append(_first(r["alibi"][shift], ONSET, ONSET + WINDOW))
        med = f"{int(np.median(delays))}" if delays else "—"
        p90 = f"{int(np.percentile(delays, 90))}" if delays else "—"
        bound = float(np.median([r["bound"][shift] for r in res]))
        print(f"| {shift} | {len(delays)}/{len(res)} | {med} | {p90} | {bound:,.0f} | "
              f"{_fmt(split[True])} | {_fmt(split[False])} | "
              + " | ".join(_fmt(v) for v in peers.values())
              + f" | {', '.join(firsts)} |", flush=True)


if __name__ == "__main__":
    main()
