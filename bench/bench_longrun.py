"""Issue #11, long horizon: realized false alarms per camera-week over camera-days.

Five fixed-mount simulated cameras (``producers.simulated_camera``, ``mount="fixed"``)
over real photos never used for tuning, at **1 frame/s** for 24 h each (86,400
frames: 5 camera-days in all), rendered at 160x120 to make it affordable. Each
camera has a real day/night cycle (period 86,400 s of stream time, gain
0.6-1.4 and a colour-temperature swing, the phase drawn per camera) and
passers-by (one every ~100 s on average, each 10-40 s in view). Every frame
is JPEG-encoded (q85), decoded and measured by ``processors.image_quality``;
the values are cached in ``~/.cache/driftline/bench_longrun``. Then a
``StreamMonitor`` at its defaults (events stamped at 1 frame/s: it measures its
rate, turns the weekly budget into an ERT and ``MIN_DURATION`` into events)
watches each camera at three budgets spanning 10,000x, and river's ADWIN and
PageHinkley (defaults) watch the standardised whole-frame quality values of
the same frames. The embedding is a constant stand-in (frames only).

Run from the repository root::

    python -m bench.bench_longrun              # render (first run) + the table
    python -m bench.bench_longrun --hours 6    # a shorter smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("DRIFTLINE_BENCH_CACHE", "~/.cache/driftline")).expanduser() / (
    "bench_longrun")
FPS = 1.0
DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Scenes never used for tuning: the evaluation set of bench_quality and two more.
CAMERAS = (("rocket", 21), ("flower", 22), ("motorcycle_left", 23), ("motorcycle_right", 24),
           ("camera", 25))
BUDGETS = (1.0, 100.0, 10_000.0)
# The monitor's alarms are cached per camera and budget under this tag (bump it
# when the monitor changes).
RUN = "r2"
# Alarms before the monitor's first calibration (reference 200 events) are not counted.
WARM = 400
# Whole-frame values the river peers watch (standardised on frames WARM/2..WARM).
PEER_KEYS = ("brightness", "contrast", "sharpness", "saturation", "colourfulness", "noise",
             "warmth", "tint")


def camera(scene: str, seed: int):
    from producers.simulated_camera import SimulatedCamera

    return SimulatedCamera(scene, seed=seed, size=(160, 120), fps=FPS, mount="fixed",
                           lighting_period_s=DAY_S, lighting_amplitude=0.4,
                           occluder_rate=1 / 100, occluder_frames=(10, 41))


def frames_quality(scene: str, seed: int, n: int) -> dict[str, np.ndarray]:
    """Quality values of ``n`` frames (cached): keys, a (n, k) array, CPU seconds."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{scene}-{seed}-{n}.npz"
    if path.exists():
        with np.load(path) as z:
            return {"keys": z["keys"], "values": z["values"], "seconds": z["seconds"]}
    import cv2

    from processors.image_quality import image_quality

    cam = camera(scene, seed)
    t0 = time.process_time()
    keys: list[str] = []
    values = None
    for i, f in enumerate(cam.frames(n)):
        ok, buf = cv2.imencode(".jpg", f.rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
        q = image_quality(rgb, encoded_size=len(buf))
        if values is None:
            keys = sorted(q)
            values = np.empty((n, len(keys)), np.float32)
        values[i] = [q[k] for k in keys]
    seconds = time.process_time() - t0
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(keys), values=values, seconds=np.array(seconds))
    tmp.replace(path)
    return {"keys": np.array(keys), "values": values, "seconds": np.array(seconds)}


def monitor_alarms(args: tuple[str, int, int, float]) -> tuple[str, float, list[str], float]:
    """(scene, budget, signals of the alarms after WARM, CPU µs per event)."""
    from driftline.settings import MonitorSettings
    from processors.monitor import StreamMonitor
    from schemas.events import Embedding

    scene, seed, n, budget = args
    done = CACHE / f"alarms-{scene}-{seed}-{n}-{budget:g}-{RUN}.json"
    if done.exists():
        r = json.loads(done.read_text())
        return scene, budget, r["signals"], r["us"]
    q = frames_quality(scene, seed, n)
    keys = [str(k) for k in q["keys"]]
    mon = StreamMonitor("cam", "v1", MonitorSettings(false_alarms_per_week=budget))
    out: list[str] = []
    t0 = time.process_time()
    for i, row in enumerate(q["values"].tolist()):
        e = Embedding(event_id=f"e{i}", stream_id="cam", model_version="v1", frame_id=f"f{i}",
                      frame_index=i, vector=[1.0] * 8, quality=dict(zip(keys, row, strict=True)),
                      ts=T0 + timedelta(seconds=i / FPS))
        out += [a.signal for a in mon.observe(e) if i >= WARM]
    us = 1e6 * (time.process_time() - t0) / n
    done.write_text(json.dumps({"signals": out, "us": us}))
    return scene, budget, out, us


def river_alarms(args: tuple[str, int, int]) -> tuple[str, dict[str, int]]:
    """Alarms after WARM of river ADWIN / PageHinkley (defaults) on any standardised value."""
    from bench.quality_peers import river_alarm_indices

    scene, seed, n = args
    q = frames_quality(scene, seed, n)
    return scene, {name: len(idx) for name, idx in
                   river_alarm_indices(q, PEER_KEYS, WARM).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=24.0, help="stream time per camera")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--cameras", type=int, default=len(CAMERAS), help="the first N cameras")
    args = ap.parse_args()
    n = int(args.hours * 3600 * FPS)
    cameras = CAMERAS[: args.cameras]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        secs = list(ex.map(_render, [(sc, sd, n) for sc, sd in cameras]))
    print(f"# {len(cameras)} cameras x {n:,} frames rendered/measured (cached) in "
          f"{time.time() - t0:.0f} s wall; {1e3 * sum(secs) / (n * len(cameras)):.2f} ms CPU "
          "per frame when rendered", flush=True)
    if args.render_only:
        return
    t1 = time.time()
    jobs = [(sc, sd, n, b) for b in BUDGETS for sc, sd in cameras]
    with ProcessPoolExecutor(args.workers) as ex:
        results = list(ex.map(monitor_alarms, jobs))
        peers = list(ex.map(river_alarms, [(sc, sd, n) for sc, sd in cameras]))
    weeks = len(cameras) * (n - WARM) / FPS / WEEK_S
    us = float(np.median([r[3] for r in results]))
    print(f"# monitors: {time.time() - t1:.0f} s wall, {us:.0f} µs CPU per event (median)\n")
    print("| detector | budget / camera-week | camera-days | alarms | realized / camera-week "
          "| signals |")
    print("|---|---|---|---|---|---|")
    for b in BUDGETS:
        sigs: dict[str, int] = {}
        for _, budget, al, _ in results:
            if budget == b:
                for s in al:
                    sigs[s] = sigs.get(s, 0) + 1
        total = sum(sigs.values())
        print(f"| driftline | {b:g} | {weeks * 7:.2f} | {total} | {total / weeks:.2f} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(sigs.items())) or '—'} |")
    for name in ("river ADWIN", "river PageHinkley"):
        total = sum(p[1][name] for p in peers)
        per = ", ".join(f"{sc} {p[name]}" for sc, p in peers)
        print(f"| {name} (defaults, any of {len(PEER_KEYS)} values) | — | {weeks * 7:.2f} | "
              f"{total:,} | {total / weeks:,.0f} | {per} |")


def _render(args: tuple[str, int, int]) -> float:
    scene, seed, n = args
    return float(frames_quality(scene, seed, n)["seconds"])


if __name__ == "__main__":
    main()
