"""What a stream's state costs the worker: snapshot bytes per input event and memory per stream.

No broker: the worker's two snapshot policies are replayed over the same
interleaved streams, through the router the worker runs, and every snapshot
the policy would send is encoded (its bytes are what the state topic gets):

- ``per batch`` (before): every stream a batch of ``BATCH`` events touched;
- ``per stream`` (now): a stream every ``STATE_EVERY`` of its own events
  (plus once at the end, standing in for ``STATE_INTERVAL_S``).

Memory: the process's resident set before and after the monitors exist and
are past their warm-up, divided by the number of streams; and the size of an
evicted monitor (``MAX_LIVE_MONITORS``: a compressed checkpoint).

    python bench/bench_state.py [--streams 40] [--events 600]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator

import numpy as np

from driftline.settings import MonitorSettings
from processors.monitor import MonitorRegistry
from processors.router import Router, Source
from schemas.events import Embedding, Prediction
from schemas.wire import encode

BATCH = 100
STATE_EVERY = 100
EDGE_DIM = 64
EMB_DIM = 128


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def stream_events(sid: str, n: int, seed: int, embedder: bool) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    dim = EMB_DIM if embedder else EDGE_DIM
    base = rng.normal(size=dim) + 2.0
    emb = np.zeros(dim)
    for i in range(n):
        emb = 0.85 * emb + rng.normal(size=dim) * 0.2
        vec = [float(x) for x in base + emb]
        if embedder:
            q = {"brightness": 50.0 + rng.normal(), "contrast": 30.0 + rng.normal()}
            yield encode(Embedding(event_id=f"{sid}-e{i}", stream_id=sid, model_version="v1",
                                   frame_id=f"{sid}-f{i}", frame_index=i, vector=vec, quality=q))
        else:
            yield encode(Prediction(event_id=f"{sid}-p{i}", stream_id=sid, model_version="v1",
                                    frame_index=i, top_class=str(rng.choice(["car", "bus"])),
                                    confidence=float(np.clip(0.7 + 0.05 * rng.normal(), 0, 1)),
                                    embedding=vec))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=40)
    ap.add_argument("--events", type=int, default=600, help="events per stream")
    args = ap.parse_args()
    settings = MonitorSettings(reference_size=200, embedding_dim=EMB_DIM)
    gens = [stream_events(f"s{i}", args.events, i, embedder=i % 4 == 0)
            for i in range(args.streams)]
    # Round robin: the worst case for "per batch" (every batch touches every stream).
    lines = [line for group in zip(*gens, strict=True) for line in group]
    gc.collect()
    rss0 = rss_bytes()
    router = Router(MonitorRegistry(settings))
    per_batch = per_stream = 0
    n_batch = n_stream = 0
    since: dict[tuple[str, str], int] = {}
    started = time.perf_counter()
    for b in range(0, len(lines), BATCH):
        touched = {}
        for off in range(b, min(b + BATCH, len(lines))):
            routed = router.route(lines[off], Source.INPUTS, ("in:0", off))
            for mon in routed.touched:
                key = (mon.stream_id, mon.model_version)
                touched[key] = mon
                since[key] = since.get(key, 0) + 1
        for key, mon in touched.items():
            size = len(encode(mon.snapshot()))
            per_batch += size
            n_batch += 1
            if since[key] >= STATE_EVERY:
                per_stream += size
                n_stream += 1
                since[key] = 0
    for key, left in since.items():
        if left:
            per_stream += len(encode(router.registry.monitors[key].snapshot()))
            n_stream += 1
    elapsed = time.perf_counter() - started
    gc.collect()
    rss1 = rss_bytes()
    n = len(lines)
    print(f"# {args.streams} streams (1 in 4 embedder vectors of {EMB_DIM}, others edge "
          f"predictions with {EDGE_DIM}-d vectors), {args.events} events each, round robin; "
          f"REFERENCE_SIZE={settings.reference_size}; {n / elapsed:.0f} events/s incl. "
          "encoding every per-batch snapshot")
    print("| policy | snapshots | snapshots / event | state bytes / input event |")
    print("|---|---:|---:|---:|")
    print(f"| per batch of {BATCH} (before) | {n_batch} | {n_batch / n:.3f} | "
          f"{per_batch / n:,.0f} |")
    print(f"| per stream, every {STATE_EVERY} of its events (now) | {n_stream} | "
          f"{n_stream / n:.3f} | {per_stream / n:,.0f} |")
    print(f"RSS per live stream monitor: {(rss1 - rss0) / args.streams / 1e6:.2f} MB "
          f"({(rss1 - rss0) / 1e6:.0f} MB for {args.streams} monitors)")
    reg = router.registry
    for key in list(reg.monitors):
        reg.evict(key)
    packed = sum(len(b) for _, b in reg.evicted.values())
    print(f"evicted (MAX_LIVE_MONITORS): {packed / args.streams / 1e3:.0f} KB per stream "
          "(compressed checkpoint)")


if __name__ == "__main__":
    main()
