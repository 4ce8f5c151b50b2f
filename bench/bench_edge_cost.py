"""One edge stream's monitor cost, compared across checkouts in one run: warm-up and steady state.

An edge stream (``Prediction`` events each carrying a 512-d embedding and
top-5 scores, as ``bench_monitor.throughput_edge`` makes them) through a
default ``StreamMonitor`` on one core: the CPU of its first ``--warm`` events
(every signal's reference and calibration, ``output.class_mix``'s at 2,000
included), the steady-state rate after them, the calibration excess (the
warm-up's CPU beyond what its events would cost at the steady rate) and the
checkpoint size. ``bench_monitor.throughput_edge``'s single figure (20,000
events after 1,000) mixes the two: its timed events include the class-mix
calibration.

Each checkout (a worktree: ``git worktree add /tmp/old <commit>``) runs in
its own process with ``PYTHONPATH`` set to it, pinned to one core when
``taskset`` exists, its BLAS limited to one thread as in the worker, the
checkouts interleaved ``--rounds`` times: on a shared machine compare the
ratios of one run, not numbers across runs.

Run from the repository root::

    python -m bench.bench_edge_cost                       # this checkout only
    python -m bench.bench_edge_cost --trees /tmp/old .    # a baseline, then this one
    python -m bench.bench_edge_cost --trees /tmp/old . --calls   # and calls per event

>>> row = measure(warm=400, steady=200)
>>> sorted(row), row["warm_events"], row["steady_rate"] > 0
(['calibration_excess_s', 'checkpoint_kib', 'steady_rate', 'warm_cpu_s', 'warm_events'], 400, True)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np


def edge_events(n: int, dim: int = 512) -> list[Any]:
    """``n`` edge ``Prediction`` events of one stream, seeded: a ``dim``-d embedding, top-5 scores.

    What ``bench_monitor.throughput_edge`` feeds too (its events are these).

    >>> evs = edge_events(3, dim=8)
    >>> len(evs), len(evs[0].embedding), sorted(evs[0].scores)
    (3, 8, ['a', 'b', 'c', 'd', 'e'])
    """
    from bench.bench_monitor import TS
    from schemas.events import Prediction

    rng = np.random.default_rng(1)
    basis = rng.normal(size=(16, dim))
    names = ["a", "b", "c", "d", "e"]

    def make(i: int) -> Prediction:
        p = np.sort(rng.dirichlet(np.ones(5)))[::-1]
        return Prediction.model_construct(
            event_id=f"p{i}", stream_id="cam", model_version="v1", ts=TS, frame_id=f"f{i}",
            frame_index=i, top_class="a", confidence=float(p[0]),
            embedding=(rng.normal(size=16) @ basis + 0.1 * rng.normal(size=dim)).tolist(),
            boxes=[], scores=dict(zip(names, p.tolist(), strict=True)))

    return [make(i) for i in range(n)]


def measure(warm: int = 3000, steady: int = 10_000, dim: int = 512,
            calls: bool = False) -> dict[str, float]:
    """CPU of the first ``warm`` events, then the rate of the next ``steady`` (this process).

    ``calls``: also count the Python function calls per steady event
    (``cProfile``: deterministic where CPU time is not; the rate is then the
    profiled one, slower).
    """
    from bench.bench_monitor import CPU, _new_monitor

    events = edge_events(warm + steady, dim)
    mon = _new_monitor(dim)
    t0 = CPU()
    for ev in events[:warm]:
        mon.observe(ev)
    prof = cProfile.Profile() if calls else None
    t1 = CPU()
    if prof is not None:
        prof.enable()
    for ev in events[warm:]:
        mon.observe(ev)
    if prof is not None:
        prof.disable()
    per_event = (CPU() - t1) / steady
    out = {"warm_events": warm, "warm_cpu_s": t1 - t0,
           "calibration_excess_s": (t1 - t0) - warm * per_event,
           "steady_rate": 1.0 / per_event,
           "checkpoint_kib": len(json.dumps(mon.state())) / 1024}
    if prof is not None:
        out["calls_per_event"] = sum(e.callcount for e in prof.getstats()) / steady
    return out


def _child(tree: str, warm: int, steady: int, calls: bool) -> dict[str, float]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
           "--warm", str(warm), "--steady", str(steady), *(["--calls"] if calls else [])]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", "1", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trees", nargs="+", default=["."], help="checkouts to compare, in order")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs per checkout")
    ap.add_argument("--warm", type=int, default=3000, help="warm-up events (calibrations)")
    ap.add_argument("--steady", type=int, default=10_000, help="events timed after them")
    ap.add_argument("--calls", action="store_true",
                    help="one more round per checkout, profiled: Python calls per steady event")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        # As the worker does (processors/stream_app.py): a multi-threaded BLAS
        # spins a second thread on every small SVD (the embedding reference's
        # fit), doubling its CPU on an idle machine and far worse on a busy one.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        print(json.dumps(measure(args.warm, args.steady, calls=args.calls)))
        return
    rows: list[list[dict[str, float]]] = [[] for _ in args.trees]
    for _ in range(args.rounds):
        for tree, runs in zip(args.trees, rows, strict=True):
            runs.append(_child(tree, args.warm, args.steady, False))
    profiled = [_child(t, args.warm, args.steady, True)["calls_per_event"] if args.calls
                else None for t in args.trees]
    print(f"# one edge stream (512-d embedding + top-5 scores per Prediction), default monitor, "
          f"{args.rounds} interleaved rounds, medians")
    print(f"| checkout | first {args.warm:,} events, CPU s | calibration excess, s "
          "| steady events/s | checkpoint KiB | Python calls per steady event |")
    print("|---|---|---|---|---|---|")
    for tree, runs, n_calls in zip(args.trees, rows, profiled, strict=True):
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {tree} | {med['warm_cpu_s']:.3f} | {med['calibration_excess_s']:.3f} "
              f"| {med['steady_rate']:,.0f} | {med['checkpoint_kib']:.1f} "
              f"| {'—' if n_calls is None else f'{n_calls:.1f}'} |")


if __name__ == "__main__":
    main()
