"""Event-loop stalls while many streams warm up: calibrations inline vs in a process pool.

When a stream's signals finish their reference, each calibrates its
detector's threshold by Monte-Carlo (0.05-0.35 s). Inline, that runs on the
worker's event loop; with ``DRIFTLINE_CALIBRATION_WORKERS`` > 0 it runs in
child processes (``processors.calibration_pool``) and the loop only waits,
without blocking, when a stream's next event needs its result.

No broker: ``--streams`` edge-prediction streams (64-d embeddings, a class
mix, a confidence that drops at ``SHIFT`` of the stream), round robin,
encoded as the worker reads them, go through the worker's path -- batches of
``MONITOR_BATCH`` events, each decoded (``decode_timed``), its stream's
calibrations settled, routed (``apply_timed``), its new requests submitted
-- on an asyncio loop with a lag probe (a 10 ms sleep; how late it wakes is
the stall). Per ``--workers`` value: the largest stall and the number of
stalls of 1 s or more (probe), the largest gap between two batch
completions, this process's CPU, the pool's CPU (its children, reaped),
events/s; and an assert that every mode fires the same alerts (ids,
indices, thresholds).

    PYTHONPATH=$PWD python bench/bench_warmup.py --streams 100 --events 480 --workers 0 1
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.settings import MonitorSettings
from processors.calibration_pool import CalibrationPool, Calibrations
from processors.monitor import MonitorRegistry
from processors.router import Routed, Router, Source
from processors.stream_app import MONITOR_BATCH
from processors.stream_metrics import apply_timed, decode_timed
from schemas.events import Prediction
from schemas.wire import encode

EDGE_DIM = 64
# Events are stamped 1 s apart: the monitor measures 1 event/s, so
# MIN_DURATION (45 s) is 45 events and the drop is confirmed within the run.
STEP_S = 1.0
SHIFT = 0.7  # the confidence drops from this share of a stream's events
PROBE_S = 0.01
STALL_S = 1.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stream_events(sid: str, n: int, seed: int) -> list[bytes]:
    """One stream's edge predictions, encoded: a sticky class mix, AR(1) confidence."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=EDGE_DIM) + 2.0
    z, cls, out = 0.0, "car", []
    for i in range(n):
        z = 0.85 * z + rng.normal() * np.sqrt(1 - 0.85**2)
        conf = float(np.clip(0.75 + 0.03 * z - (0.3 if i >= SHIFT * n else 0.0), 0.05, 0.99))
        if rng.random() < 0.2:
            cls = str(rng.choice(["car", "bus", "person"], p=[0.6, 0.1, 0.3]))
        vec = (base + 0.3 * rng.normal(size=EDGE_DIM)).tolist()
        out.append(encode(Prediction(
            event_id=f"{sid}-p{i}", stream_id=sid, model_version="v1", frame_index=i,
            ts=T0 + timedelta(seconds=i * STEP_S), top_class=cls, confidence=conf,
            scores={cls: conf, "other": 1.0 - conf}, embedding=vec)))
    return out


def recording(streams: int, events: int) -> list[bytes]:
    each = [stream_events(f"cam-{s:03d}", events, seed=1000 + s) for s in range(streams)]
    return [e for group in zip(*each, strict=True) for e in group]


@dataclass
class Run:
    workers: int
    wall_s: float
    events: int
    max_stall_s: float
    stalls: int
    max_gap_s: float
    cpu_s: float
    pool_cpu_s: float
    inline: int
    alerts: list[tuple[str, str, int, float | None]]

    @property
    def rate(self) -> float:
        return self.events / self.wall_s


async def _run(lines: list[bytes], workers: int) -> Run:
    loop = asyncio.get_running_loop()
    pool = CalibrationPool(workers) if workers else None
    calibrations = Calibrations(pool)
    router = Router(MonitorRegistry(MonitorSettings(), deferred=workers > 0))
    lags: list[float] = []
    done = False

    async def probe() -> None:
        while not done:
            t = loop.time()
            await asyncio.sleep(PROBE_S)
            lags.append(loop.time() - t - PROBE_S)

    probing = asyncio.ensure_future(probe())
    await asyncio.sleep(PROBE_S * 2)
    cpu0, kids0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = last = time.perf_counter()
    gaps, alerts = [], []
    for b in range(0, len(lines), MONITOR_BATCH):
        for raw in lines[b:b + MONITOR_BATCH]:  # as the worker's apply_batch
            event = decode_timed(router, raw, Source.INPUTS)
            if isinstance(event, Routed):
                raise AssertionError(event.rejected)
            await calibrations.settle(getattr(event, "stream_id", ""))
            routed = apply_timed(router, event, Source.INPUTS, None)
            calibrations.submit(routed.touched)
            alerts += [(a.alert_id, a.signal, a.detected_index, a.threshold)
                       for a in routed.alerts]
        calibrations.install_done()
        await asyncio.sleep(0)  # the worker awaits its outputs between batches
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    for key in list(router.registry.monitors):
        await calibrations.settle(key[0])
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    done = True
    await probing
    if pool is not None:
        pool.close(wait=True)  # children reaped: their CPU is in RUSAGE_CHILDREN
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    pool_cpu = (kids.ru_utime - kids0.ru_utime) + (kids.ru_stime - kids0.ru_stime)
    return Run(workers, wall, len(lines), max(lags, default=0.0),
               sum(lag >= STALL_S for lag in lags), max(gaps, default=0.0), cpu, pool_cpu,
               calibrations.inline, alerts)


def table(runs: list[Run]) -> str:
    rows = ["| calibration workers | largest stall (s) | stalls ≥ 1 s | largest batch gap (s) "
            "| worker CPU (s) | pool CPU (s) | events/s | alerts |",
            "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        rows.append(f"| {r.workers or '0 (inline)'} | {r.max_stall_s:.2f} | {r.stalls} "
                    f"| {r.max_gap_s:.2f} | {r.cpu_s:.1f} | {r.pool_cpu_s:.1f} | {r.rate:.0f} "
                    f"| {len(r.alerts)} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--events", type=int, default=480, help="events per stream")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    lines = recording(args.streams, args.events)
    runs = []
    for w in args.workers:
        runs.append(asyncio.run(_run(lines, w)))
        r = runs[-1]
        print(f"workers={w}: {r.wall_s:.1f} s, {len(r.alerts)} alerts, "
              f"{r.inline} calibrated inline after a pool failure", flush=True)
    first = runs[0].alerts
    for r in runs[1:]:
        assert r.alerts == first, f"workers={r.workers}: alerts differ from {runs[0].workers}'s"
    print(f"\n{args.streams} streams x {args.events} edge predictions, batches of "
          f"{MONITOR_BATCH}; alerts and ids identical in every mode ({len(first)})\n")
    print(table(runs))


if __name__ == "__main__":
    main()
