"""Per-frame features for ``bench_monitor.py``, cached per segment (resumable).

Every frame goes through ``FramePipeline.process`` as a JPEG (q85) ``Frame``
event: the worker's own decode, quality and embedding path. Stored per frame:
the embedding (float32), the quality signals (columns named in ``quality_keys``),
the model's top class and confidence, and its top-5 ``scores`` (names, probs).

Segments (one ``.npz`` each under ``CACHE``; a crash loses at most one):

- clean frames ``0 .. frames`` in ``SEG``-frame pieces;
- each pixel shift (``producers.drift_injection``; ``scene_change`` by the
  simulated camera) as frames ``ONSET .. ONSET+POST`` of a camera with that
  drift from ``ONSET`` (same seed, so identical to the clean stream before);
- the two output shifts, whose pixels equal the clean frames:
  ``class_mix`` and ``confidence_drop`` (``model_version``'s new model:
  logits at temperature 1.3) are produced by ``camera_events._apply_output_drift``
  — the function ``driftline simulate`` uses — on the model's outputs for the
  clean frames ``ONSET .. ONSET+POST``, with the same random streams.

Run ``python bench/monitor_cache.py`` to build it (``--threads``); the
benchmark builds missing segments itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

# Features from the checkout this script lives in, not whatever driftline is installed.
if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CACHE = Path.home() / ".cache" / "driftline" / "bench_monitor"
VERSION = "v3"
SEG = 2000
ONSET = 3000
POST = 600
SCENES = (("vtest", 0), ("coffee", 1), ("chelsea", 2), ("china", 3))
PIXEL_SHIFTS = ("blur", "brightness", "gaussian_noise", "jpeg", "color_cast", "occlusion",
                "scene_change")
OUTPUT_SHIFTS = ("class_mix", "confidence_drop")
SHIFTS = PIXEL_SHIFTS + OUTPUT_SHIFTS
TOPK = 5
VTEST = "/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def _path(scene: str, seed: int, kind: str, start: int, n: int) -> Path:
    return CACHE / f"{scene}-s{seed}-{kind}-{start}-{n}.{VERSION}.npz"


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _save(path: Path, out: dict[str, np.ndarray]) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)


def _scores_arrays(scores: list[dict[str, float] | None]) -> tuple[np.ndarray, np.ndarray]:
    names = np.full((len(scores), TOPK), "", dtype=object)
    probs = np.full((len(scores), TOPK), np.nan)
    for i, s in enumerate(scores):
        for j, (k, v) in enumerate(list((s or {}).items())[:TOPK]):
            names[i, j], probs[i, j] = k, v
    return names.astype(str), probs


def _camera(scene: str, seed: int, shift: str | None):
    from producers.drift_injection import DriftSpec
    from producers.simulated_camera import SimulatedCamera
    spec = DriftSpec(shift, onset=ONSET) if shift else None
    return SimulatedCamera(scene, seed=seed, size=(320, 240), drift=spec)


def _pipeline(threads: int):
    from processors.embedder import Embedder
    from processors.frame_pipeline import FramePipeline
    return FramePipeline(Embedder.load(threads=threads))


def _run_pipeline(cam, pipeline, n: int, label: str) -> dict[str, np.ndarray]:
    from processors.image_quality import QUALITY_KEYS
    from producers.sources import encode_jpeg
    from schemas.events import Embedding, Frame

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
    keys = sorted({k for r in rows for k in r.quality}, key=lambda k: (
        QUALITY_KEYS.index(k) if k in QUALITY_KEYS else len(QUALITY_KEYS), k))
    names, probs = _scores_arrays([r.scores for r in rows])
    print(f"  {label}: {n} frames, {n / (time.perf_counter() - t0):.0f} frames/s", flush=True)
    return {
        "embeddings": np.asarray([r.vector for r in rows], np.float32),
        "confidence": np.asarray([r.confidence for r in rows], np.float64),
        "top": np.asarray([r.top_class for r in rows]).astype(str),
        "quality": np.asarray([[r.quality.get(k, np.nan) for k in keys] for r in rows],
                              np.float64),
        "quality_keys": np.asarray(keys),
        "score_names": names,
        "score_probs": probs,
    }


def clean(scene: str, seed: int, frames: int, threads: int = 2) -> dict[str, np.ndarray]:
    """Clean frames ``0 .. frames`` (whole segments of ``SEG``)."""
    starts = list(range(0, frames, SEG))
    missing = [s for s in starts if not _path(scene, seed, "clean", s, SEG).exists()]
    if missing:
        cam, pipe, pos = _camera(scene, seed, None), _pipeline(threads), 0
        for s in missing:
            cam.skip(s - pos)
            _save(_path(scene, seed, "clean", s, SEG),
                  _run_pipeline(cam, pipe, SEG, f"{scene} clean {s}-{s + SEG}"))
            pos = s + SEG
    parts = [_load(_path(scene, seed, "clean", s, SEG)) for s in starts]
    out = {k: np.concatenate([p[k] for p in parts])[:frames] if parts[0][k].ndim and k not in (
        "quality_keys",) else parts[0][k] for k in parts[0]}
    return out


def shifted(scene: str, seed: int, shift: str, threads: int = 2) -> dict[str, np.ndarray]:
    """Frames ``ONSET .. ONSET+POST`` under ``shift`` from ``ONSET``."""
    path = _path(scene, seed, shift, ONSET, POST)
    if path.exists():
        return _load(path)
    if shift in OUTPUT_SHIFTS:
        _build_output_shifts(scene, seed, threads)
        return _load(path)
    cam = _camera(scene, seed, shift)
    cam.skip(ONSET)
    out = _run_pipeline(cam, _pipeline(threads), POST, f"{scene} {shift}")
    _save(path, out)
    return out


def _build_output_shifts(scene: str, seed: int, threads: int) -> None:
    """``class_mix`` and ``confidence_drop`` segments, as ``camera_events`` makes them."""
    from processors.embedder import Embedder
    from processors.image_decode import decode_image
    from processors.top_scores import top_scores
    from producers.camera_events import _apply_output_drift, _new_classes
    from producers.drift_injection import DriftSpec
    from producers.sources import encode_jpeg

    base = clean(scene, seed, ONSET + POST, threads)
    base = {k: (v[ONSET:ONSET + POST] if k != "quality_keys" else v) for k, v in base.items()}
    emb = Embedder.load(threads=threads)
    cam = _camera(scene, seed, None)
    cam.skip(ONSET)
    kinds = {"class_mix": "class_mix", "confidence_drop": "model_version"}
    rngs = {}
    news = {}
    for name in kinds:
        # camera_events: mix_rng = default_rng(seed + 104_729), new classes drawn first.
        rngs[name] = np.random.default_rng(seed + 104_729)
        news[name] = _new_classes(emb, rngs[name])
    tops: dict[str, list] = {k: [] for k in kinds}
    confs: dict[str, list] = {k: [] for k in kinds}
    scores: dict[str, list] = {k: [] for k in kinds}
    t0 = time.perf_counter()
    for lo in range(0, POST, 16):
        sims = list(cam.frames(min(16, POST - lo)))
        rgbs = [decode_image(encode_jpeg(s.rgb, quality=85)) for s in sims]
        preds = emb.embed(rgbs)
        for name, kind in kinds.items():
            p, _ = _apply_output_drift(preds, DriftSpec(kind, onset=ONSET),
                                       [s.index for s in sims], news[name], rngs[name])
            for j in range(len(sims)):
                tops[name].append(p.top_class[j])
                confs[name].append(float(np.clip(p.confidence[j], 0, 1)))
                scores[name].append(top_scores(p, j, emb.class_names))
    print(f"  {scene} output shifts: {POST} frames, {POST / (time.perf_counter() - t0):.0f}/s",
          flush=True)
    for name in kinds:
        names, probs = _scores_arrays(scores[name])
        out = dict(base)
        out.update(top=np.asarray(tops[name]).astype(str), confidence=np.asarray(confs[name]),
                   score_names=names, score_probs=probs)
        _save(_path(scene, seed, name, ONSET, POST), out)


def build(scenes: list[tuple[str, int]], frames: int, threads: int) -> None:
    """Everything the benchmark needs; the onset region first so a partial cache is usable."""
    for scene, seed in scenes:
        clean(scene, seed, min(frames, ONSET + POST + SEG - 1) // SEG * SEG or SEG, threads)
        for shift in SHIFTS:
            shifted(scene, seed, shift, threads)
    for scene, seed in scenes:
        clean(scene, seed, frames, threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenes", default=",".join(f"{s}:{n}" for s, n in SCENES))
    args = ap.parse_args()
    os.environ.setdefault("DRIFTLINE_VIDEO_PATH", VTEST)
    scenes = [(s, int(n)) for s, n in (it.split(":") for it in args.scenes.split(","))]
    t0 = time.perf_counter()
    build(scenes, args.frames, args.threads)
    print(f"cache complete in {time.perf_counter() - t0:.0f} s: {CACHE}", flush=True)


if __name__ == "__main__":
    main()


def quality_keys() -> tuple[str, ...]:
    from processors.image_quality import QUALITY_KEYS
    return tuple(QUALITY_KEYS)
