"""Embedding throughput: decode, image quality, embed, and all three, against raw onnxruntime.

Frames are real: 640x480 crops of ``vtest.avi`` (a fixed outdoor camera,
Debian ``opencv-doc``; looked for under ``/tmp/opencv-doc`` or
``$DRIFTLINE_BENCH_VIDEO``) and of scikit-image's photos, JPEG-encoded at
quality 85 like a camera upload. Without the video the photos alone are used.

"raw" is ``InferenceSession.run`` of the same packaged model on the same
preprocessed tensors at the same batch size and thread count: the hardware
limit. "embed" is ``Embedder.embed`` on decoded RGB frames (resize,
normalise, run, softmax). The ratio embed / raw says what the wrapper costs.

Run: ``python bench/bench_embed.py`` (about a minute on 2 cores).

``--int8``: the int8 embedder (``DRIFTLINE_EMBEDDER__PRECISION=int8``,
``processors/quantization.py``) against fp32 on the same frames: frames/s
per core (CPU time, interleaved, best of ``--reps``), the cosine of each
frame's embedding to its fp32 embedding, and a detection check: a simulated
camera with a drift (``driftline simulate --out``) replayed with each
precision (``driftline replay``), alerts compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import skimage.data

from processors.embedder import Embedder
from processors.image_decode import decode_image
from processors.image_quality import image_quality

VIDEO_CANDIDATES = [
    os.environ.get("DRIFTLINE_BENCH_VIDEO", ""),
    "/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
]
W, H = 640, 480


def _video_frames(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    path = next((p for p in VIDEO_CANDIDATES if p and Path(p).exists()), None)
    if path is None:
        return []
    cap = cv2.VideoCapture(path)
    frames = []
    idx = 0
    step = 7  # spread over the clip: ~795 frames
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        idx += 1
        if idx % step:
            continue
        fh, fw = bgr.shape[:2]
        y, x = rng.integers(0, fh - H + 1), rng.integers(0, fw - W + 1)
        frames.append(np.ascontiguousarray(bgr[y : y + H, x : x + W, ::-1]))
    cap.release()
    return frames


def _photo_frames(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(),
              skimage.data.rocket(), *skimage.data.stereo_motorcycle()[:2]]
    out = []
    for i in range(n):
        p = photos[i % len(photos)][:, :, :3]
        s = max(W / p.shape[1], H / p.shape[0]) * rng.uniform(1.0, 1.3)
        big = cv2.resize(p, (int(p.shape[1] * s) + 1, int(p.shape[0] * s) + 1))
        y, x = rng.integers(0, big.shape[0] - H + 1), rng.integers(0, big.shape[1] - W + 1)
        out.append(np.ascontiguousarray(big[y : y + H, x : x + W]))
    return out


def make_frames(n: int, seed: int = 0) -> tuple[list[bytes], str]:
    rng = np.random.default_rng(seed)
    video = _video_frames(n * 3 // 4, rng)
    rgb = video + _photo_frames(n - len(video), rng)
    jpegs = [cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
             for f in rgb]
    src = f"{len(video)} vtest.avi crops + {n - len(video)} photo crops" if video else \
        f"{n} photo crops (vtest.avi not found)"
    return jpegs, src


def best_rate(fn: Callable[[], int], reps: int) -> float:
    """Items per second, best of ``reps`` timed runs (the machine is shared)."""
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def cpu_rate(fn: Callable[[], int], reps: int) -> float:
    """Items per CPU second of this process, best of ``reps``."""
    best = 0.0
    for _ in range(reps):
        t = time.process_time()
        n = fn()
        best = max(best, n / max(time.process_time() - t, 1e-9))
    return best


def replay_alerts(recording: Path, precision: str, int8_dir: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    # Persistence off: the drift is reported when a detector fires (the check is
    # about the embedder, not the persistence window).
    env.update(DRIFTLINE_EMBEDDER__PRECISION=precision, DRIFTLINE_EMBEDDER__INT8_DIR=str(int8_dir),
               DRIFTLINE_MONITOR__MIN_DURATION="0")
    out = subprocess.run([sys.executable, "-m", "driftline", "replay", str(recording)], env=env,
                         capture_output=True, text=True, check=True).stdout
    fired = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [f"{f['alert']['signal']} at {f['alert']['detected_index']}" for f in fired]


def int8_main(args: argparse.Namespace) -> None:
    int8_dir = Path(tempfile.mkdtemp(prefix="driftline-int8-"))
    t0 = time.perf_counter()
    q = Embedder.load(threads=1, precision="int8", int8_dir=int8_dir)
    made = time.perf_counter() - t0
    f = Embedder.load(threads=1)
    jpegs, src = make_frames(args.frames, seed=1)
    rgbs = [decode_image(j) for j in jpegs]
    print(f"# int8 vs fp32 embedder — {os.cpu_count()} cores, onnxruntime {ort.__version__}, "
          f"1 thread; frames: {src}; quantized in {made:.0f} s (once, into the data dir)")
    print("| batch | fp32 frames/s per core | int8 frames/s per core | int8 / fp32 | "
          "cosine to fp32 min / mean |")
    print("|---:|---:|---:|---:|---:|")
    for b in args.batches:
        bs = batches(rgbs, b)
        f.embed(bs[0])
        q.embed(bs[0])
        r_f = r_q = 0.0
        for _ in range(args.reps):  # interleaved: load drift hits both
            r_f = max(r_f, cpu_rate(lambda bs=bs: sum(len(f.embed(x).embeddings) for x in bs), 1))
            r_q = max(r_q, cpu_rate(lambda bs=bs: sum(len(q.embed(x).embeddings) for x in bs), 1))
        ef = np.concatenate([f.embed(x).embeddings for x in bs])
        eq = np.concatenate([q.embed(x).embeddings for x in bs])
        cos = (ef * eq).sum(1) / np.linalg.norm(ef, axis=1) / np.linalg.norm(eq, axis=1)
        print(f"| {b} | {r_f:.1f} | {r_q:.1f} | {r_q / r_f:.2f} | {cos.min():.3f} / "
              f"{cos.mean():.4f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec.jsonl"
        cmd = ["simulate", "--stream", "cam-q", "--frames", str(args.sim_frames), "--scene",
               "coffee", "--drift", args.drift, "--onset", str(args.sim_frames * 2 // 3),
               "--out", str(rec)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        subprocess.run([sys.executable, "-m", "driftline", *cmd], env=env, check=True,
                       capture_output=True)
        fp32 = replay_alerts(rec, "fp32", int8_dir)
        int8 = replay_alerts(rec, "int8", int8_dir)
    print(f"\n# detection check: driftline {' '.join(cmd[:-2])}, replayed with each precision")
    print(f"# alerts (signal at stream index), onset {args.sim_frames * 2 // 3}; "
          f"identical: {fp32 == int8}")
    print(f"#   fp32: {', '.join(fp32) or 'none'}")
    print(f"#   int8: {', '.join(int8) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96, help="frames per timed run")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per figure (best kept)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--int8", action="store_true", help="int8 vs fp32 instead (see above)")
    ap.add_argument("--drift", default="brightness", help="--int8: the simulated drift")
    ap.add_argument("--sim-frames", type=int, default=900)
    args = ap.parse_args()
    if args.int8:
        int8_main(args)
        return

    jpegs, src = make_frames(args.frames)
    rgbs = [decode_image(j) for j in jpegs]
    kb = sum(map(len, jpegs)) / len(jpegs) / 1024
    print(f"# driftline embedding throughput — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, onnxruntime {ort.__version__}, opencv {cv2.__version__}")
    print(f"# frames: {src}, 640x480 JPEG q85 (mean {kb:.0f} KB); best of {args.reps} runs")

    dec = best_rate(lambda: len([decode_image(j) for j in jpegs]), args.reps)
    qual = best_rate(lambda: len([image_quality(r, len(j)) for r, j in zip(rgbs, jpegs,
                                                                          strict=True)]),
                     args.reps)
    print(f"# decode (pillow): {dec:.0f} frames/s ({1e3 / dec:.2f} ms/frame); "
          f"quality: {qual:.0f} frames/s ({1e3 / qual:.2f} ms/frame); one thread each\n")

    print("| threads | batch | raw ORT img/s | embed img/s | embed / raw | "
          "decode+quality+embed frames/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        emb = Embedder.load(threads=threads)
        sess, inp = emb.session, emb.manifest.input_name
        for b in args.batches:
            img_batches = batches(rgbs, b)
            jpeg_batches = batches(jpegs, b)
            tensors = [emb.preprocess(bt) for bt in img_batches]
            emb.embed(img_batches[0])  # warm-up: first run plans memory
            sess.run(None, {inp: tensors[0]})

            def raw(tensors=tensors, sess=sess, inp=inp) -> int:
                for t in tensors:
                    sess.run(None, {inp: t})
                return sum(len(t) for t in tensors)

            def pipe(img_batches=img_batches, emb=emb) -> int:
                for bt in img_batches:
                    emb.embed(bt)
                return sum(len(bt) for bt in img_batches)

            def full(jpeg_batches=jpeg_batches, emb=emb) -> int:
                for jb in jpeg_batches:
                    imgs = [decode_image(j) for j in jb]
                    for im, j in zip(imgs, jb, strict=True):
                        image_quality(im, len(j))
                    emb.embed(imgs)
                return sum(len(jb) for jb in jpeg_batches)

            # Interleave raw and pipeline so drift in machine load hits both.
            r_raw, r_pipe = 0.0, 0.0
            for _ in range(args.reps):
                r_raw = max(r_raw, best_rate(raw, 1))
                r_pipe = max(r_pipe, best_rate(pipe, 1))
            r_full = best_rate(full, args.reps)
            print(f"| {threads} | {b} | {r_raw:.1f} | {r_pipe:.1f} | {r_pipe / r_raw:.3f} | "
                  f"{r_full:.1f} |", flush=True)


if __name__ == "__main__":
    main()
