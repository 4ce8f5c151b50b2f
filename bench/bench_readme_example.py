"""Issue #13: the README's options example on 5 scenes x 3 seeds, in-process.

``python -m driftline demo --drift blur --onset 500 --frames 900 --scene
astronaut`` must find the drift after its onset and raise nothing before it.
One full demo takes minutes (broker, worker, sinks, two child processes
embedding on 2 cores); this runs the demo's monitoring path without Kafka:
the same simulated camera (``camera_events`` with the deployed model making
the predictions), the same monitor settings (``driftline.demo.DEMO_MONITOR``,
defaults otherwise), through ``processors.replay`` (the worker's router:
frames decoded, measured and embedded, then observed with their
predictions), and the demo's own verdict (``expectation_met``).
``tests/integration/test_demo.py`` runs one real demo end to end.

Run from the repository root (40 s to 4 min per run on 2 shared cores)::

    python -m bench.bench_readme_example [--scenes astronaut,coffee] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import time

from driftline.demo import DEMO_MONITOR, STREAM, expectation_met
from driftline.settings import MonitorSettings
from processors.embedder import Embedder
from processors.replay import Fired, replay_lines
from producers.camera_events import camera_events
from producers.drift_injection import DriftSpec
from schemas.wire import encode

SCENES = ("astronaut", "coffee", "chelsea", "rocket", "china")
SEEDS = (0, 1, 2)
DRIFT, ONSET, FRAMES = "blur", 500, 900  # the README's example


def run_one(scene: str, seed: int, predictor: Embedder,
            monitor: dict | None = None) -> tuple[list[str], list[str], bool]:
    """(false alarms, detections, met) of one demo run over its recording."""
    events = camera_events(stream_id=STREAM, frames=FRAMES, scene=scene, seed=seed,
                           drift=DriftSpec(kind=DRIFT, onset=ONSET), predictor=predictor)
    lines = (encode(ce.event) for ce in events)
    settings = MonitorSettings(**(monitor or DEMO_MONITOR))
    alerts = [item.alert for item in replay_lines(lines, monitor=settings)
              if isinstance(item, Fired)]
    before, after, ok = expectation_met(alerts, ONSET)
    fmt = [f"{a.signal}@{a.detected_frame_index}" for a in before]
    return fmt, [f"{a.signal}@{a.detected_frame_index}" for a in after], ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--min-duration", type=float, default=None,
                        help="Override the demo's min_duration (seconds).")
    args = parser.parse_args()
    monitor = dict(DEMO_MONITOR)
    if args.min_duration is not None:
        monitor["min_duration"] = args.min_duration
    predictor = Embedder.load()
    print(f"# {DRIFT} at frame {ONSET} of {FRAMES}; monitor {monitor}, defaults otherwise")
    print("| scene | seed | met | false alarms (signal@frame) | first detections | s |")
    print("|---|---:|:---:|---|---|---:|")
    met = total = 0
    for scene in args.scenes.split(","):
        for seed in map(int, args.seeds.split(",")):
            started = time.monotonic()
            before, after, ok = run_one(scene, seed, predictor, monitor)
            met, total = met + ok, total + 1
            print(f"| {scene} | {seed} | {'yes' if ok else 'NO'} | {', '.join(before) or '—'} "
                  f"| {', '.join(after[:3]) or '—'} | {time.monotonic() - started:.0f} |",
                  flush=True)
    print(f"\nmet on {met} of {total} runs")


if __name__ == "__main__":
    main()
