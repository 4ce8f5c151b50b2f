"""Issue #11: false alarms per camera-week and detection per shift, frames only, no embedder.

Simulated cameras (``producers.simulated_camera``) over real photos at 10
frames/s, each frame JPEG-encoded (q85), decoded and measured by
``processors.image_quality`` as the worker does, then observed by a
``StreamMonitor`` with its defaults (events stamped at 10 frames/s, so the
monitor measures its rate and turns the weekly budget into an ERT). The
embedding is a constant stand-in: this measures the image-quality signals
(whole-frame, tiles, frozen), not the embedding or model-output signals
(``bench/bench_monitor.py`` does, from cached embeddings).

Sources: a *tuning* set (the scenes the tile signals and the persistence were
tuned on while building them) and an *evaluation* set never used for tuning.
Clean streams carry passers-by: dark soft blobs crossing in 10-40 s.

Peers in the same run, on the same frames: river ADWIN / PageHinkley
(``bench.quality_peers``) and, when importable, alibi-detect's
``MMDDriftOnline`` (``bench.alibi_streams``: one detector per camera, reset
between its streams; ``--no-alibi`` leaves it out).

Run from the repository root (~6 min on 2 shared cores plus ~6 min for alibi's
bootstraps the first time; frames and thresholds are cached under
``~/.cache/driftline``)::

    python -m bench.bench_quality
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("DRIFTLINE_BENCH_CACHE", "~/.cache/driftline")).expanduser() / (
    "bench_quality")
FPS = 10.0
WEEK_FRAMES = FPS * 7 * 24 * 3600
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TUNE = (("coffee", 1), ("chelsea", 2), ("china", 3), ("astronaut", 4))
EVAL = (("rocket", 11), ("flower", 12), ("motorcycle_left", 13))
# Calibrated by frame 400 (200 frames of tile/quality reference, 200 of signal reference).
WARM = 400
ONSET = 600
WINDOW = 600
RAMP = 1500
SHIFTS = ("smudge", "vignetting", "defocus", "motion_blur", "haze", "haze_ramp", "exposure",
          "color_cast", "resolution", "jpeg", "occlusion", "scene_change", "frozen")
BUDGETS = (1.0, 100.0, 10_000.0)
# Whole-frame values river's peers watch (bench/quality_peers.py).
PEER_KEYS = ("brightness", "contrast", "sharpness", "saturation", "colourfulness", "noise",
             "warmth", "tint")
# The simulation profile in use (``--sim``); a list so worker processes get it too.
SIM_MODE = ["fixed"]


# The simulated camera: ``fixed`` (default) is a camera bolted to a wall -- the
# view sways by ~1.5 px (correlation time 60 s) and the day/night cycle takes
# 24 h of stream time; ``wander`` is the first version of this bench (the view
# panning 0.7 px/frame over the whole photo, a light cycle of ~400 s).
SIM = {"fixed": {"mount": "fixed", "lighting_period_s": 86_400.0},
       "wander": {}}
DAY_S = 86_400.0


def _camera(scene: str, seed: int, shift: str | None, sim: str = "fixed"):
    from producers.drift_injection import DriftSpec
    from producers.simulated_camera import SimulatedCamera

    drift = None
    if shift == "haze_ramp":
        drift = DriftSpec("haze", onset=ONSET, ramp=RAMP)
    elif shift is not None:
        drift = DriftSpec(shift, onset=ONSET)
    # Passers-by: one every ~100 s on average, each 10-40 s in view.
    return SimulatedCamera(scene, seed=seed, size=(320, 240), fps=FPS, drift=drift,
                           occluder_rate=1 / 1000, occluder_frames=(100, 401), **SIM[sim])


def frames_quality(scene: str, seed: int, shift: str | None, n: int,
                   sim: str | None = None) -> dict[str, np.ndarray]:
    """Quality values of ``n`` frames (cached): keys and a (n, k) array."""
    sim = sim or SIM_MODE[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = "" if sim == "wander" else f"-{sim}"
    path = CACHE / f"{scene}-{seed}-{shift or 'clean'}-{n}{tag}.npz"
    if path.exists():
        with np.load(path) as z:
            return {"keys": z["keys"], "values": z["values"], "seconds": z["seconds"]}
    import cv2

    from processors.image_quality import image_quality

    cam = _camera(scene, seed, shift, sim)
    rows: list[dict[str, float]] = []
    t0 = time.process_time()
    for f in cam.frames(n):
        ok, buf = cv2.imencode(".jpg", f.rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
        rows.append(image_quality(rgb, encoded_size=len(buf)))
    seconds = time.process_time() - t0
    keys = np.array(sorted(rows[0]))
    values = np.array([[r[k] for k in keys] for r in rows])
    np.savez(path, keys=keys, values=values, seconds=np.array(seconds))
    return {"keys": keys, "values": values, "seconds": np.array(seconds)}


def alerts_of(q: dict[str, np.ndarray], budget: float, min_duration: float | None = None,
              global_min_duration: float | None = None) -> list[tuple[str, int, int]]:
    """(signal, change frame, detected frame) of every alert of a default monitor."""
    from driftline.settings import MonitorSettings
    from processors.monitor import StreamMonitor
    from schemas.events import Embedding

    extra = {} if min_duration is None else {"min_duration": min_duration}
    if global_min_duration is not None:
        extra["global_min_duration"] = global_min_duration
    mon = StreamMonitor("cam", "v1", MonitorSettings(false_alarms_per_week=budget, **extra))
    keys = [str(k) for k in q["keys"]]
    out = []
    for i, row in enumerate(q["values"].tolist()):
        e = Embedding(event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                      frame_index=i, vector=[1.0] * 8, quality=dict(zip(keys, row, strict=True)),
                      ts=T0 + timedelta(seconds=i / FPS))
        out += [(a.signal, a.change_frame_index or 0, a.detected_frame_index or 0)
                for a in mon.observe(e)]
    return out


_CLEAN: dict[tuple[str, int, int, float | None, float | None], list[tuple[str, int, int]]] = {}


def clean_alerts(scene: str, seed: int, n: int, min_duration: float | None = None,
                 global_min_duration: float | None = None) -> list[tuple[str, int, int]]:
    """The alerts of the clean stream of a camera at the default budget (memoised)."""
    key = (scene, seed, n, min_duration, global_min_duration)
    if key not in _CLEAN:
        _CLEAN[key] = alerts_of(frames_quality(scene, seed, None, n), 1.0, min_duration,
                                global_min_duration)
    return _CLEAN[key]


def _job(args: tuple[str, int, str | None, int, str]) -> tuple[str, int, str | None, float]:
    scene, seed, shift, n, sim = args
    q = frames_quality(scene, seed, shift, n, sim)
    return scene, seed, shift, float(q["seconds"]) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clean-frames", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shift-scenes",
                    default="rocket:11,flower:12,motorcycle_left:13,coffee:1,china:3")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean-stream table")
    ap.add_argument("--persistence", action="store_true",
                    help="only the persistence table: clean alarms and delays per MIN_DURATION")
    ap.add_argument("--sim", choices=sorted(SIM), default="fixed",
                    help="simulated camera: fixed mount and a 24-h day (default) or the first "
                    "version's wandering view and 400-s light cycle")
    ap.add_argument("--no-alibi", action="store_true",
                    help="leave alibi-detect's MMDDriftOnline out (it runs by default when "
                    "importable: bench/install_peers.sh)")
    ap.add_argument("--global-min-duration", type=float, default=None,
                    help="override GLOBAL_MIN_DURATION (s; 0 turns the fast path off)")
    args = ap.parse_args()
    SIM_MODE[0] = args.sim
    shift_scenes = [(s.split(":")[0], int(s.split(":")[1])) for s in args.shift_scenes.split(",")]
    jobs: list[tuple[str, int, str | None, int, str]] = [
        (sc, sd, None, args.clean_frames, args.sim) for sc, sd in TUNE + EVAL]
    for shift in SHIFTS:
        n = ONSET + (RAMP + WINDOW if shift == "haze_ramp" else WINDOW)
        jobs += [(sc, sd, shift, n, args.sim) for sc, sd in shift_scenes]
    if args.persistence:
        persistence_table(args.clean_frames, shift_scenes)
        return
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        costs = list(ex.map(_job, jobs))
    print(f"# frames rendered/measured in {time.time() - t0:.0f} s; render+encode+decode+quality "
          f"{1e3 * float(np.median([c[3] for c in costs])):.2f} ms/frame (320x240, median)")

    alibi = None
    if not args.no_alibi:
        from bench.alibi_streams import alibi_available

        if alibi_available():
            scenes = list(dict.fromkeys(([] if args.no_clean else list(TUNE + EVAL))
                                        + shift_scenes))
            t0 = time.time()
            alibi = alibi_hits_per_scene(scenes, args.clean_frames, args.workers, shift_scenes)
            print(f"# alibi-detect: {len(scenes)} scenes in {time.time() - t0:.0f} s")
        else:
            print("# alibi-detect is not importable (bench/install_peers.sh): its rows are left "
                  "out")
    if not args.no_clean:
        clean_table(args.clean_frames, args.global_min_duration, args.workers, alibi)
    shift_table(args.clean_frames, shift_scenes, args.global_min_duration, args.workers, alibi)


def signal_counts(alarms: list[tuple[str, int, int]]) -> str:
    """Alarms per signal, as a table cell.

    >>> signal_counts([("quality.brightness", 1, 2), ("quality.warmth", 5, 9),
    ...                ("quality.brightness", 7, 8)])
    'quality.brightness 2, quality.warmth 1'
    >>> signal_counts([])
    '—'
    """
    counts = Counter(a[0] for a in alarms)
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—"


def _clean_job(args: tuple[str, int, int, float, float | None]) -> list[tuple[str, int, int]]:
    scene, seed, n, budget, gmd = args
    q = frames_quality(scene, seed, None, n)
    return [a for a in alerts_of(q, budget, None, gmd) if a[2] >= WARM]


AlibiHits = dict[str, dict[str | None, list[int]]]


def clean_table(clean_frames: int, global_min_duration: float | None = None,
                workers: int = 2, alibi: AlibiHits | None = None) -> None:
    """Clean streams: alarms per camera-week at each budget, and river's peers."""
    from bench.quality_peers import river_alarm_indices

    print(f"\n## Clean streams (passers-by 10-40 s), alarms after calibration (frame {WARM})\n")
    print("| detector | budget / camera-week | set | streams | monitored frames (camera-hours) | "
          "alarms | alarms / camera-week (realized) | signals |")
    print("|---|---|---|---|---|---|---|---|")
    jobs = [(sc, sd, clean_frames, b, global_min_duration)
            for b in BUDGETS for sc, sd in TUNE + EVAL]
    with ProcessPoolExecutor(workers) as ex:
        found = dict(zip([(j[0], j[3]) for j in jobs], ex.map(_clean_job, jobs), strict=True))
    for budget in BUDGETS:
        for name, scenes in (("tuning", TUNE), ("evaluation", EVAL)):
            alarms = [a for sc, _ in scenes for a in found[(sc, budget)]]
            frames = len(scenes) * (clean_frames - WARM)
            weeks = frames / WEEK_FRAMES
            print(f"| driftline | {budget:g} | {name} | {len(scenes)} | {frames:,} "
                  f"({frames / FPS / 3600:.1f}) | {len(alarms)} | {len(alarms) / weeks:,.0f} | "
                  f"{signal_counts(alarms)} |")
    for name, scenes in (("tuning", TUNE), ("evaluation", EVAL)):
        counts: dict[str, int] = {}
        for sc, sd in scenes:
            q = frames_quality(sc, sd, None, clean_frames)
            for peer, hits in river_alarm_indices(q, PEER_KEYS, WARM).items():
                counts[peer] = counts.get(peer, 0) + len(hits)
        frames = len(scenes) * (clean_frames - WARM)
        for peer, c in counts.items():
            print(f"| {peer} (defaults) | — | {name} | {len(scenes)} | {frames:,} "
                  f"({frames / FPS / 3600:.1f}) | {c} | {c / (frames / WEEK_FRAMES):,.0f} | "
                  f"any of {len(PEER_KEYS)} standardised values |")
        if alibi is not None:
            from bench.alibi_streams import ERT, LABEL

            c = sum(len(alibi[sc][None]) for sc, _ in scenes)
            print(f"| {LABEL} | {WEEK_FRAMES / ERT:,.0f} | {name} | {len(scenes)} | {frames:,} "
                  f"({frames / FPS / 3600:.1f}) | {c} | {c / (frames / WEEK_FRAMES):,.0f} | "
                  f"the {len(PEER_KEYS)} standardised values as one vector |")


def _shift_row(args: tuple[str, list[tuple[str, int]], int, float | None, AlibiHits | None]
               ) -> str:
    """One row of the shift table (run in a worker process)."""
    from bench.quality_peers import river_alarm_indices

    shift, scenes, clean_frames, gmd, alibi = args
    limit = RAMP + WINDOW if shift == "haze_ramp" else WINDOW
    delays, firsts = [], []
    peer: dict[str, list[int]] = {"river ADWIN": [], "river PageHinkley": []}
    for sc, sd in scenes:
        q = frames_quality(sc, sd, shift, ONSET + limit)
        # Frames before the onset are the clean stream's: an alert the clean
        # stream also raised (same signal and change frame) is its false
        # alarm, not a detection.
        clean = {(a[0], a[1]) for a in clean_alerts(sc, sd, clean_frames, None, gmd)}
        after = [a for a in alerts_of(q, 1.0, None, gmd)
                 if a[2] >= ONSET and (a[0], a[1]) not in clean]
        if after:
            first = min(after, key=lambda a: a[2])
            delays.append(first[2] - ONSET)
            firsts.append(f"{first[0].removeprefix('quality.')} ({sc}, {first[2] - ONSET})")
        else:
            firsts.append(f"miss ({sc})")
        for name, hits in river_alarm_indices(q, PEER_KEYS, WARM).items():
            late = [h - ONSET for h in hits if h >= ONSET]
            if late:
                peer[name].append(late[0])
        if alibi is not None:
            late = [h - ONSET for h in alibi[sc][shift] if h >= ONSET]
            if late:
                peer.setdefault("alibi", []).append(late[0])
            else:
                peer.setdefault("alibi", [])
    med = f"{int(np.median(delays))}" if delays else "—"
    p90 = f"{int(np.percentile(delays, 90))}" if delays else "—"
    peers = " | ".join(f"{len(v)}/{len(scenes)}, {int(np.median(v)) if v else '—'}"
                       for v in peer.values())
    return (f"| {shift} | {len(delays)}/{len(scenes)} | {med} | {p90} | {peers} | "
            f"{', '.join(firsts)} |")


def shift_table(clean_frames: int, shift_scenes: list[tuple[str, int]],
                global_min_duration: float | None = None, workers: int = 2,
                alibi: AlibiHits | None = None) -> None:
    """Detection and delay per shift at the default budget, with river's peers."""
    print(f"\n## Shifts from frame {ONSET} (default budget: 1 false alarm / camera-week)\n")
    print("Delay = frames (10 fps) from the onset to the first alert at or after it, within "
          f"{WINDOW} frames ({RAMP + WINDOW} for the ramp). Peers: river ADWIN / PageHinkley "
          "(defaults) on each standardised whole-frame value, the first alarm of any after the "
          "onset (detected, median delay)"
          + (", and alibi-detect's MMDDriftOnline on the 8 values as one vector (one detector "
             "per camera, reset between streams).\n" if alibi is not None else ".\n"))
    print("| shift | detected | median delay | p90 delay | river ADWIN | river PageHinkley | "
          + ("alibi MMD | " if alibi is not None else "") + "first signal (scene, delay) |")
    print("|---|---|---|---|---|---|---|" + ("---|" if alibi is not None else ""))
    with ProcessPoolExecutor(workers) as ex:
        for row in ex.map(_shift_row, [(sh, shift_scenes, clean_frames, global_min_duration,
                                        alibi) for sh in SHIFTS]):
            print(row, flush=True)


def _alibi_scene(args: tuple[str, int, int, tuple[str, ...]]
                 ) -> tuple[str, dict[str | None, list[int]], float]:
    """alibi's alarms on one camera's clean stream and its shifted streams (one detector)."""
    from bench.alibi_streams import streams_alarms
    from bench.quality_peers import reference_stats

    scene, seed, clean_frames, shifts = args
    clean = frames_quality(scene, seed, None, clean_frames)
    mean, std, cols = reference_stats(clean, PEER_KEYS, WARM)

    def z(q: dict[str, np.ndarray]) -> np.ndarray:
        return (np.asarray(q["values"], dtype=float)[:, cols] - mean) / std

    streams: list[tuple[str | None, np.ndarray]] = [(None, z(clean))]
    for shift in shifts:
        n = ONSET + (RAMP + WINDOW if shift == "haze_ramp" else WINDOW)
        streams.append((shift, z(frames_quality(scene, seed, shift, n))))
    t0 = time.process_time()
    ref = z(clean)[WARM // 2 : WARM]
    hits = streams_alarms(ref, [(str(k), x) for k, x in streams], WARM)
    return scene, {k: hits[str(k)] for k, _ in streams}, time.process_time() - t0


def alibi_hits_per_scene(scenes: list[tuple[str, int]], clean_frames: int, workers: int,
                         shift_scenes: list[tuple[str, int]]
                         ) -> dict[str, dict[str | None, list[int]]]:
    """alibi's alarm frames per scene and stream (None: the clean stream)."""
    jobs = [(sc, sd, clean_frames, SHIFTS if (sc, sd) in shift_scenes else ())
            for sc, sd in scenes]
    with ProcessPoolExecutor(workers) as ex:
        res = list(ex.map(_alibi_scene, jobs))
    for sc, _, cpu in res:
        print(f"# alibi-detect {sc}: bootstrap (unless cached) and scoring {cpu:.0f} s CPU",
              flush=True)
    return {sc: hits for sc, hits, _ in res}


def persistence_table(clean_frames: int, shift_scenes: list[tuple[str, int]]) -> None:
    """Clean alarms (passers-by) against detection delay, per MIN_DURATION (default budget)."""
    print("| MIN_DURATION (s) | clean alarms (7 streams, 25,200 frames) | shifts detected | "
          "median delay (frames) |")
    print("|---|---|---|---|")
    for md in (0.0, 15.0, 45.0):
        clean = sum(len([a for a in alerts_of(frames_quality(sc, sd, None, clean_frames), 1.0,
                                              md) if a[2] >= WARM]) for sc, sd in TUNE + EVAL)
        delays, total = [], 0
        for shift in SHIFTS:
            limit = RAMP + WINDOW if shift == "haze_ramp" else WINDOW
            for sc, sd in shift_scenes:
                total += 1
                q = frames_quality(sc, sd, shift, ONSET + limit)
                clean_set = {(a[0], a[1]) for a in clean_alerts(sc, sd, clean_frames, md)}
                after = [a[2] - ONSET for a in alerts_of(q, 1.0, md)
                         if a[2] >= ONSET and (a[0], a[1]) not in clean_set]
                if after:
                    delays.append(min(after))
        print(f"| {md:g} | {clean} | {len(delays)}/{total} | {int(np.median(delays))} |",
              flush=True)


if __name__ == "__main__":
    main()
