"""Issue #13: the README's options example on 5 scenes x 3 seeds, in-process.

``python -m driftline demo --drift blur --onset 500 --frames 900 --scene
astronaut`` must report the drift within ``REPORT_WITHIN_S`` of its onset and
no alert whose change began before it (``driftline.demo.expectation_met``).
One full demo takes minutes (broker, worker, sinks, two child processes
embedding on 2 cores); this runs the demo's monitoring path without Kafka
(``driftline.demo_replay``: the demo's camera with the deployed model's
predictions, the worker's router embedding frames in micro-batches, the
demo's monitor settings) and the demo's own verdict.
``tests/integration/test_readme_options_example.py`` asserts the same 15 runs;
``tests/integration/test_demo.py`` runs one real demo end to end.

Run from the repository root (~30 s of one core per run)::

    python -m bench.bench_readme_example [--scenes astronaut,coffee] [--seeds 0,1,2]
        [--min-duration S] [--workers N]
"""

from __future__ import annotations

import argparse
import time

from driftline.demo import DEMO_CAMERA, DEMO_MONITOR, REPORT_WITHIN_S, expectation_met
from driftline.demo_replay import demo_runs
from schemas.events import Alert

SCENES = ("astronaut", "coffee", "chelsea", "rocket", "china")
SEEDS = (0, 1, 2)
DRIFT, ONSET, FRAMES = "blur", 500, 900  # the README's example


def _fmt(alerts: list[Alert]) -> str:
    return ", ".join(f"{a.signal}@{a.detected_frame_index} (change @ {a.change_frame_index})"
                     for a in alerts) or "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--min-duration", type=float, default=None,
                        help="Override the demo's min_duration (seconds).")
    parser.add_argument("--workers", type=int, default=None,
                        help="Processes (default: 2 at most, one per core).")
    args = parser.parse_args()
    monitor = dict(DEMO_MONITOR)
    if args.min_duration is not None:
        monitor["min_duration"] = args.min_duration
    cases = [(scene, int(seed)) for scene in args.scenes.split(",")
             for seed in args.seeds.split(",")]
    print(f"# {DRIFT} at frame {ONSET} of {FRAMES}; camera {DEMO_CAMERA}; monitor {monitor}, "
          f"defaults otherwise; report within {REPORT_WITHIN_S:g} s")
    started = time.monotonic()
    runs = demo_runs(cases, drift=DRIFT, onset=ONSET, frames=FRAMES, monitor=monitor,
                     workers=args.workers)
    print("| scene | seed | met | false alarms (signal@frame) | first detections |")
    print("|---|---:|:---:|---|---|")
    met = 0
    for (scene, seed), alerts in runs.items():
        before, after, ok = expectation_met(alerts, ONSET)
        met += ok
        print(f"| {scene} | {seed} | {'yes' if ok else 'NO'} | {_fmt(before)} "
              f"| {_fmt(after[:3])} |", flush=True)
    print(f"\nmet on {met} of {len(runs)} runs in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
