"""The whole monitor on simulated-camera video: false alarms, detection delay, cost.

``processors.monitor.StreamMonitor`` with its defaults (ERT 10,000 events per
stream, all signals together) watches what the worker would feed it: per
frame one ``Embedding`` event (EfficientNet-Lite0 vector of the JPEG-decoded
frame plus its image-quality signals) and one ``Prediction`` event (the same
model's top class and confidence). Frames come from
``producers.simulated_camera`` (real photos / real ``vtest.avi`` video,
wandering crop, lighting cycle, passing occluders, sensor noise).

- False alarms: ``--frames`` clean frames per scene (one seed each); every
  alert is a false alarm. Reported per 10,000 frames (= 20,000 events).
- Delay: the same streams with a shift injected at frame ``ONSET`` (frames
  from the onset to the first alert at or after it; ``miss`` when nothing
  fires within ``POST`` frames). Alerts before the onset are false alarms.
- Peers on the same streams: river ADWIN and PageHinkley at their defaults on
  the standardised embedding distance and brightness (restarted after every
  alarm), what a user would wire up instead.
- Cost: events/s through ``observe`` with 512-d embeddings on one core, and
  the size of a stream's checkpoint (memory per stream is bounded).

Features are cached under ``~/.cache/driftline/bench_monitor`` (the first run
embeds every frame: about 10 minutes for the defaults on 2 shared cores).

Run::

    python bench/bench_monitor.py                 # 3 scenes x 20,000 frames
    python bench/bench_monitor.py --frames 4000   # quicker
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from river import drift as river_drift

from driftline.settings import MonitorSettings
from processors.monitor import StreamMonitor
from schemas.events import Embedding, Frame, Prediction

CACHE = Path.home() / ".cache" / "driftline" / "bench_monitor"
SCENES = (("vtest", 0), ("coffee", 1), ("chelsea", 2))
SHIFTS = ("blur", "brightness", "gaussian_noise", "jpeg", "color_cast", "occlusion",
          "scene_change")
ONSET = 3000
POST = 600
QUALITY_KEYS = ("brightness", "contrast", "sharpness", "saturation", "colourfulness", "noise",
                "encoded_kb")


def features(scene: str, seed: int, shift: str | None, start: int, n: int,
             threads: int) -> dict[str, np.ndarray]:
    """Embeddings, confidence, top class and quality of frames ``start .. start+n``.

    Each frame goes through ``FramePipeline.process`` as a JPEG (q85) ``Frame``
    event: the worker's own decode, quality and embedding path.
    """
    path = CACHE / f"{scene}-s{seed}-{shift or 'clean'}-{start}-{n}.v2.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from processors.embedder import Embedder
    from processors.frame_pipeline import FramePipeline
    from producers.drift_injection import DriftSpec
    from producers.simulated_camera import SimulatedCamera
    from producers.sources import encode_jpeg

    spec = DriftSpec(shift, onset=ONSET) if shift else None
    cam = SimulatedCamera(scene, seed=seed, size=(320, 240), drift=spec)
    cam.skip(start)
    pipeline = FramePipeline(Embedder.load(threads=threads))
    rows: list[Embedding] = []
    t0 = time.perf_counter()
    for lo in range(0, n, 16):
        frames = [Frame(event_id=f"f{f.index}", stream_id="cam", model_version="v1",
                        image=encode_jpeg(f.rgb, quality=85), content_type="image/jpeg",
                        frame_index=f.index)
                  for f in cam.frames(min(16, n - lo))]
        for res in pipeline.process(frames):
            if not isinstance(res, Embedding):
                raise res
            rows.append(res)
        if lo % 2000 == 0:
            print(f"  {scene} {shift or 'clean'}: {lo}/{n} frames "
                  f"({(lo + 16) / (time.perf_counter() - t0):.0f}/s)", flush=True)
    out = {
        "embeddings": np.asarray([r.vector for r in rows], np.float32),
        "confidence": np.asarray([r.confidence for r in rows], np.float64),
        "top": np.asarray([r.top_class for r in rows]),
        "quality": np.asarray([[r.quality.get(k, np.nan) for k in QUALITY_KEYS] for r in rows],
                              np.float64),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


def stitch(clean: dict[str, np.ndarray], shifted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clean frames before the onset, shifted frames from it."""
    return {k: np.concatenate([clean[k][:ONSET], shifted[k]]) for k in clean}


TS = datetime(2026, 1, 1, tzinfo=UTC)


def frame_events(i: int, vector: list[float], quality: dict[str, float], top_class: str,
                 confidence: float) -> tuple[Embedding, Prediction]:
    """The worker's two monitor events for frame ``i`` (built unvalidated: it is a benchmark)."""
    return (
        Embedding.model_construct(
            event_id=f"e{i}", stream_id="cam", model_version="v1", ts=TS, frame_id=f"f{i}",
            frame_index=i, vector=vector, quality=quality, meta={}),
        Prediction.model_construct(
            event_id=f"p{i}", stream_id="cam", model_version="v1", ts=TS, frame_id=f"f{i}",
            frame_index=i, top_class=top_class, confidence=confidence, embedding=None,
            boxes=[], scores=None),
    )


def events(f: dict[str, np.ndarray]) -> Iterator[Embedding | Prediction]:
    for i in range(len(f["confidence"])):
        q = {k: float(v) for k, v in zip(QUALITY_KEYS, f["quality"][i], strict=True)
             if np.isfinite(v)}
        yield from frame_events(i, f["embeddings"][i].tolist(), q, str(f["top"][i]),
                                float(np.clip(f["confidence"][i], 0, 1)))


def monitor_alerts(f: dict[str, np.ndarray]) -> list[tuple[int, str]]:
    """(frame index, signal) of every alert the default monitor raises on ``f``."""
    mon = StreamMonitor("cam", "v1", MonitorSettings(embedding_dim=f["embeddings"].shape[1]))
    out = []
    for ev in events(f):
        for a in mon.observe(ev):
            out.append((int(a.detected_frame_index or 0), a.signal))
    return out


def river_alarms(x: np.ndarray, factory: type, ref: int = 400) -> list[int]:
    """Alarm indices of a river detector (defaults) on ``x`` standardised by its first ``ref``."""
    mu, sd = float(x[:ref].mean()), float(x[:ref].std()) or 1.0
    z = (x - mu) / sd
    det, hits = factory(), []
    for i in range(ref, len(z)):
        det.update(float(z[i]))
        if det.drift_detected:
            hits.append(i)
            det = factory()
    return hits


def peer_signals(f: dict[str, np.ndarray], ref: int = 400) -> dict[str, np.ndarray]:
    v = f["embeddings"].astype(np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    m = v[:ref].mean(axis=0)
    return {"distance": 1.0 - v @ (m / np.linalg.norm(m)), "brightness": f["quality"][:, 0]}


PEERS = {"river ADWIN": river_drift.ADWIN, "river PageHinkley": river_drift.PageHinkley}


@dataclass
class Result:
    name: str
    clean_alarms: int = 0
    clean_frames: int = 0
    pre_onset: int = 0
    delays: dict[str, list[int | None]] | None = None

    def pre_onset_per_scene(self, shifts: int) -> float:
        # Every shifted stream of a scene is the same clean stream before the
        # onset: count those frames once, not once per shift.
        return self.pre_onset / max(shifts, 1)

    def per10k(self) -> float:
        return 1e4 * self.clean_alarms / max(self.clean_frames, 1)


def first_after(hits: list[int]) -> tuple[int | None, int]:
    pre = sum(1 for h in hits if h < ONSET)
    after = [h - ONSET for h in hits if ONSET <= h < ONSET + POST]
    return (min(after) if after else None), pre


def throughput(dim: int = 512, n: int = 20_000) -> tuple[float, int]:
    """Events/s through ``observe`` after warm-up, and the checkpoint size in bytes."""
    rng = np.random.default_rng(0)
    mon = StreamMonitor("cam", "v1", MonitorSettings(embedding_dim=dim))
    basis = rng.normal(size=(16, dim))

    def make(i: int) -> tuple[Embedding, Prediction]:
        vec = (rng.normal(size=16) @ basis + 0.1 * rng.normal(size=dim)).tolist()
        q = {k: float(100 + rng.normal()) for k in QUALITY_KEYS}
        return frame_events(i, vec, q, "a", float(rng.uniform(0.5, 1)))

    for i in range(1000):  # past warm-up and calibration
        for ev in make(i):
            mon.observe(ev)
    evs = [ev for i in range(1000, 1000 + n // 2) for ev in make(i)]
    t0 = time.perf_counter()
    for ev in evs:
        mon.observe(ev)
    rate = len(evs) / (time.perf_counter() - t0)
    return rate, len(json.dumps(mon.state()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000, help="clean frames per scene")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenes", default=",".join(f"{s}:{n}" for s, n in SCENES),
                    help="scene:seed,... (default %(default)s)")
    args = ap.parse_args()
    scenes = [(s, int(n)) for s, n in (item.split(":") for item in args.scenes.split(","))]

    names = ["driftline monitor (all signals)"] + [
        f"{p} on {s}" for s in ("distance", "brightness") for p in PEERS]
    results = {n: Result(n, delays={s: [] for s in SHIFTS}) for n in names}
    per_signal: dict[str, int] = {}
    for scene, seed in scenes:
        clean = features(scene, seed, None, 0, args.frames, args.threads)
        t0 = time.perf_counter()
        alerts = monitor_alerts(clean)
        mon_s = time.perf_counter() - t0
        r = results[names[0]]
        r.clean_alarms += len(alerts)
        r.clean_frames += args.frames
        for _, sig in alerts:
            per_signal[sig] = per_signal.get(sig, 0) + 1
        print(f"{scene}: {len(alerts)} alerts on {args.frames} clean frames "
              f"({mon_s:.0f} s): {alerts[:12]}", flush=True)
        sigs = peer_signals(clean)
        for s in ("distance", "brightness"):
            for p, fac in PEERS.items():
                hits = river_alarms(sigs[s], fac)
                results[f"{p} on {s}"].clean_alarms += len(hits)
                results[f"{p} on {s}"].clean_frames += args.frames - 400
        base = clean if args.frames >= ONSET else features(scene, seed, None, 0, ONSET,
                                                           args.threads)
        for shift in SHIFTS:
            f = stitch(base, features(scene, seed, shift, ONSET, POST, args.threads))
            d, pre = first_after([h for h, _ in monitor_alerts(f)])
            results[names[0]].delays[shift].append(d)
            results[names[0]].pre_onset += pre
            sigs = peer_signals(f)
            for s in ("distance", "brightness"):
                for p, fac in PEERS.items():
                    d, pre = first_after(river_alarms(sigs[s], fac))
                    results[f"{p} on {s}"].delays[shift].append(d)
                    results[f"{p} on {s}"].pre_onset += pre

    n_runs = len(scenes)
    names_seeds = ", ".join(f"{s} (seed {n})" for s, n in scenes)
    print(f"\nScenes {names_seeds}; {args.frames:,} clean frames each; "
          f"shifts at frame {ONSET} (delay in frames, median over {n_runs} scenes; "
          f"'miss' = none within {POST}); monitor ERT 10,000 events = 1 alarm per 5,000 frames.\n")
    head = ["detector", "alarms / 10k clean frames",
            f"false alarms in the {n_runs}×{ONSET} frames before onset"]
    print("| " + " | ".join(head + list(SHIFTS)) + " |")
    print("|" + "---|" * (len(head) + len(SHIFTS)))
    for n in names:
        r = results[n]
        cells = []
        for s in SHIFTS:
            ds = r.delays[s]
            hit = sorted(d for d in ds if d is not None)
            miss = len(ds) - len(hit)
            med = "miss" if len(hit) * 2 <= len(ds) and miss else str(int(np.median(hit)))
            cells.append(med + (f" ({miss} miss)" if miss and med != "miss" else ""))
        print(f"| {n} | {r.per10k():.2f} | {r.pre_onset_per_scene(len(SHIFTS)):.0f} | "
              + " | ".join(cells) + " |")
    print(f"\nmonitor clean alerts by signal: {per_signal}")
    rate, size = throughput()
    print(f"\nmonitor cost: {rate:,.0f} events/s on one core (512-d embeddings, quality, "
          f"predictions); checkpoint {size / 1024:.0f} KiB per stream")


if __name__ == "__main__":
    main()
