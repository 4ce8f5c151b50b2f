"""Issue #11, model-output shifts through the running worker: the same alerts as in process?

``bench.bench_outputs`` measures the output signals by running
``StreamMonitor`` in this process (the replay path). Here the same streams
go through the real parts instead: a Tansu broker (``LocalBroker``), the
``Prediction`` events of ``bench_outputs.predictions`` (10 frames/s stamps,
top-5 ``scores``) published with ``Publisher`` to the predictions topic,
one real ``driftline worker`` subprocess with default settings (budget 1 per
stream-week) that consumes them, and the alerts topic read back to its end
(``processors.topic_reader.read_to_end``). The same streams then run
through ``bench_outputs.monitor_run`` in process.

Per stream (one ``stream_id`` per camera x shift, model version ``v1``;
the streams are interleaved on the topic, each keeps its order), the alert
events must be identical: alert ids, lifecycle, (signal, change frame,
detected frame) and every other field but the alert's creation time
``ts``. Exit status 1 if any stream differs.

The worker's wall time runs from its start (an empty broker group, every
event already published) to its ``/metrics`` counting every event consumed;
events/s is taken from its first consumed batch to the last.
``camera.silent`` (the worker's wall-clock check; replay has none) is
switched off (``DRIFTLINE_SILENT_AFTER_S=0``).

Run from the repository root (~2 min on 2 cores)::

    python -m bench.bench_outputs_worker
    python -m bench.bench_outputs_worker --cameras 21 --shifts new_classes --frames 4000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import Message

from bench.bench_e2e import Worker, bench_settings, cpu_seconds, delete_topics, scrape
from bench.bench_outputs import ONSET, WINDOW, monitor_run, predictions
from bench.simulated_classifier import SHIFTS, classifier_outputs
from driftline.local_infra import LocalBroker, ensure_topics
from processors.topic_reader import read_to_end
from producers.publisher import Publisher
from schemas.events import Alert
from schemas.wire import decode_as

CAMERAS = (21, 25)
FRAMES = ONSET + WINDOW
MODEL_VERSION = "v1"
WORKER_ENV = {"DRIFTLINE_SILENT_AFTER_S": "0"}


@dataclass(frozen=True)
class Stream:
    """One camera's clean stream (``shift`` None) or one shift of it from ``onset``."""

    seed: int
    shift: str | None

    @property
    def stream_id(self) -> str:
        return f"cam{self.seed}.{self.shift or 'clean'}"


AlertKey = tuple[str, str, str, int, int]


def alert_key(a: Alert) -> AlertKey:
    """(alert id, lifecycle, signal, change frame, detected frame) of one alert event."""
    return (a.alert_id, a.lifecycle, a.signal, a.change_frame_index or 0,
            a.detected_frame_index or 0)


@dataclass
class Row:
    """One stream's alert events, from the worker and in process."""

    stream: Stream
    worker: list[Alert]
    in_process: list[Alert]

    @property
    def firing(self) -> tuple[list[Alert], list[Alert]]:
        return ([a for a in self.worker if a.lifecycle == "firing"],
                [a for a in self.in_process if a.lifecycle == "firing"])

    @property
    def same_keys(self) -> bool:
        return list(map(alert_key, self.worker)) == list(map(alert_key, self.in_process))

    @property
    def same_fields(self) -> bool:
        def dump(alerts: list[Alert]) -> list[dict]:
            return [a.model_dump(mode="json", exclude={"ts"}) for a in alerts]

        return dump(self.worker) == dump(self.in_process)

    @property
    def identical(self) -> bool:
        return self.same_keys and self.same_fields


@dataclass
class Result:
    """The comparison and what the worker run cost."""

    rows: list[Row]
    events: int
    wall_s: float
    consume_s: float
    worker_cpu_s: float
    in_process_cpu_s: float
    publish_s: float
    metric_alerts: float
    log: Path
    partitions: int
    unknown_streams: list[str] = field(default_factory=list)


def interleaved(outputs: dict[Stream, dict[str, np.ndarray]]) -> list[tuple[str, bytes]]:
    """(stream id, wire bytes) of every stream's predictions, round robin over the streams."""
    from schemas.wire import encode

    per = [[encode(e) for e in predictions(out, s.stream_id, MODEL_VERSION)]
           for s, out in outputs.items()]
    ids = [s.stream_id for s in outputs]
    n = max(map(len, per))
    return [(ids[k], per[k][i]) for i in range(n) for k in range(len(per)) if i < len(per[k])]


def _in_process(outputs: dict[Stream, dict[str, np.ndarray]]
                ) -> tuple[dict[Stream, list[Alert]], float]:
    """Each stream's alert events from ``bench_outputs.monitor_run``; the CPU seconds."""
    c0 = time.process_time()
    alerts = {s: monitor_run(out, 1.0, s.stream_id, MODEL_VERSION) for s, out in outputs.items()}
    return alerts, time.process_time() - c0


def compare(bootstrap: str, streams: list[Stream], frames: int, onset: int, tmp: Path,
            *, stall_s: float = 180.0, in_process_first: bool = False) -> Result:
    """Publish the streams, run one worker over them, compare its alerts with in-process ones.

    ``in_process_first``: run the in-process monitors while the worker starts
    (it mostly waits for its group join then): a shorter run, but the
    worker's wall time then includes that contention (the tests' setting).
    """
    outputs = {s: classifier_outputs(s.seed, frames, s.shift, onset) for s in streams}
    events = interleaved(outputs)
    prefix = f"outw{uuid.uuid4().hex[:6]}"
    settings = bench_settings(bootstrap, prefix)
    ensure_topics(bootstrap, settings.topics, settings.partitions)
    topic = settings.topics.predictions
    try:
        t0 = time.perf_counter()
        with Publisher.from_settings(settings) as pub:
            for sid, value in events:
                pub.publish_raw(topic, sid.encode(), value)
        publish_s = time.perf_counter() - t0
        worker = Worker(settings.model_copy(update={"data_dir": tmp / "data"}),
                        tmp / "worker.log", WORKER_ENV)
        try:
            if in_process_first:
                in_process, in_cpu = _in_process(outputs)
            first, last, applied = None, time.monotonic(), 0.0
            while applied < len(events):
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.proc.returncode}; see "
                                       f"{worker.log.name}")
                now = scrape(worker.port).get(f"in:{topic}", 0.0)
                if now != applied:
                    first = first or time.monotonic()
                    applied, last = now, time.monotonic()
                elif time.monotonic() - last > stall_s:
                    raise RuntimeError(f"worker stalled at {applied:.0f}/{len(events)} events; "
                                       f"see {worker.log.name}")
                time.sleep(0.25)
            done = time.monotonic()
            cpu = cpu_seconds(worker.proc.pid)
            # Counted after its batch's alerts were delivered (processors.stream_app).
            fired = scrape(worker.port).get("driftline_alerts_total", 0.0)
            worker.proc.terminate()  # its alerts are delivered: it stops while they are read
            got: list[Alert] = []

            def on_alert(m: Message) -> None:
                got.append(decode_as(Alert, m.value() or b""))

            read_to_end(settings, {settings.topics.alerts: on_alert})
        finally:
            worker.stop()
    finally:
        delete_topics(bootstrap, settings.topics.all())
    by_stream: dict[str, list[Alert]] = {}
    for a in got:  # one stream's alerts share a partition: in the order it sent them
        by_stream.setdefault(a.stream_id, []).append(a)
    if not in_process_first:
        in_process, in_cpu = _in_process(outputs)
    rows = [Row(s, by_stream.pop(s.stream_id, []), in_process[s]) for s in streams]
    assert first is not None
    return Result(rows, len(events), done - worker.started, done - first, cpu, in_cpu, publish_s,
                  fired, tmp / "worker.log", settings.partitions, sorted(by_stream))


def _signals(alerts: list[Alert]) -> str:
    if not alerts:
        return "0"
    return f"{len(alerts)} (" + ", ".join(
        f"{a.signal.removeprefix('output.')} {a.change_frame_index}→{a.detected_frame_index}"
        for a in alerts) + ")"


def first_after(alerts: list[Alert], onset: int) -> str:
    """Frames from ``onset`` to the first firing alert detected at or after it."""
    late = [(a.detected_frame_index or 0) - onset for a in alerts
            if (a.detected_frame_index or 0) >= onset]
    return str(min(late)) if late else "—"


def table(res: Result, onset: int) -> str:
    """The comparison as a Markdown table, with the run's costs."""
    lines = [
        f"# {len(res.rows)} streams, {res.events:,} Prediction events; onset {onset:,}; "
        f"1 worker, {res.partitions} partitions, Tansu memory engine",
        "",
        "| stream | shift | worker alerts (signal change→detected frame) | in-process alerts | "
        "first detection after onset (worker) | resolved events worker / in-process | "
        "identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res.rows:
        w, p = r.firing
        nres = (len(r.worker) - len(w), len(r.in_process) - len(p))
        verdict = "yes" if r.identical else ("no (fields)" if r.same_keys else "no")
        lines.append(f"| {r.stream.stream_id} | {r.stream.shift or 'clean'} | {_signals(w)} | "
                     f"{_signals(p)} | {first_after(w, onset)} | {nres[0]} / {nres[1]} | "
                     f"{verdict} |")
    same = sum(r.identical for r in res.rows)
    lines += [
        "",
        f"# identical: {same}/{len(res.rows)} streams (alert ids, lifecycle, signal, change "
        "and detected frames, every field but ts)",
        f"# worker: {res.wall_s:.1f} s wall from start to the last event consumed "
        f"({res.events / res.consume_s:,.0f} events/s from its first batch, "
        f"{res.events / res.worker_cpu_s:,.0f} per CPU second of the process, "
        f"{res.worker_cpu_s:.1f} CPU s); alerts_total metric {res.metric_alerts:.0f}, "
        f"read back {sum(len(r.worker) for r in res.rows)}",
        f"# in process: {res.in_process_cpu_s:.1f} CPU s "
        f"({res.events / res.in_process_cpu_s:,.0f} events/s); publish {res.publish_s:.1f} s",
    ]
    if res.unknown_streams:
        lines.append(f"# alerts of streams not published: {res.unknown_streams}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=list(CAMERAS), help="seeds")
    ap.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=SHIFTS)
    ap.add_argument("--frames", type=int, default=FRAMES, help="per stream")
    ap.add_argument("--onset", type=int, default=ONSET)
    args = ap.parse_args()
    streams = [Stream(seed, shift) for seed in args.cameras for shift in (None, *args.shifts)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-outputs-worker-"))
    with LocalBroker(log_dir=tmp) as broker:
        res = compare(broker.bootstrap, streams, args.frames, args.onset, tmp)
    print(table(res, args.onset))
    print(f"# logs: {tmp}")
    ok = all(r.identical for r in res.rows) and not res.unknown_streams
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
