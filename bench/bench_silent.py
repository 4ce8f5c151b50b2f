"""Issue #11, silent camera: a real worker's ``camera.silent`` delay, measured on the wall clock.

A real ``driftline worker`` on the embedded Tansu broker with
``DRIFTLINE_SILENT_AFTER_S`` set; one camera sends Prediction events at 10
frames/s for ``--burst`` seconds, then goes quiet. Delay = wall time from the
delivery report of the camera's last event to the ``camera.silent`` alert's
arrival on the alerts topic (read by a consumer in this process). The next
burst re-arms the check; ``--silences`` bursts give as many measurements
(after a first one that waits for the worker's start-up and is not counted).

Run from the repository root (~1-2 min)::

    python -m bench.bench_silent
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer

from bench.bench_e2e import Worker, bench_settings, delete_topics, producer, wait_applied
from driftline.kafka_config import consumer_config
from driftline.local_infra import LocalBroker, ensure_topics

FPS = 10.0


class AlertReader:
    """Collects (arrival wall time, alert dict) from the alerts topic in a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(consumer_config(bootstrap, f"silent-{uuid.uuid4().hex[:6]}"))
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, dict]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error():
                continue
            self.seen.append((time.time(), orjson.loads(msg.value())))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.consumer.close()


def event(stream: str, i: int, rng: np.random.Generator) -> bytes:
    p = np.sort(rng.dirichlet(np.ones(5)))[::-1]
    return orjson.dumps({
        "kind": "prediction", "event_id": f"{stream}-{i}", "stream_id": stream,
        "model_version": "v1", "frame_index": i, "top_class": "car",
        "confidence": float(p[0]),
        "scores": dict(zip(["car", "bus", "truck", "person", "bicycle"], map(float, p),
                           strict=True)),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--after", type=float, default=10.0, help="DRIFTLINE_SILENT_AFTER_S")
    ap.add_argument("--silences", type=int, default=5)
    ap.add_argument("--burst", type=float, default=5.0, help="seconds of events before each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-silent-"))
    rng = np.random.default_rng(0)
    stream = "cam-silent"
    with LocalBroker(log_dir=tmp) as broker:
        s = bench_settings(broker.bootstrap, f"silent{uuid.uuid4().hex[:6]}")
        ensure_topics(broker.bootstrap, s.topics, 4)
        topic = s.topics.predictions
        reader = AlertReader(broker.bootstrap, s.topics.alerts)
        w = Worker(s, tmp / "worker.log", {"DRIFTLINE_SILENT_AFTER_S": f"{args.after:g}"})
        p = producer(broker.bootstrap, linger_ms=1)
        delays, quiet = [], []
        sent = 0
        try:
            # Round 0 waits for the worker's group join and start-up: not counted.
            for _ in range(args.silences + 1):
                last_ack = [0.0]

                def acked(err, _msg, box=last_ack) -> None:
                    if err is None:
                        box[0] = time.time()

                t0 = time.perf_counter()
                n = int(args.burst * FPS)
                for j in range(n):
                    while time.perf_counter() < t0 + j / FPS:
                        time.sleep(0.002)
                    p.produce(topic, event(stream, sent, rng), stream.encode(), on_delivery=acked)
                    sent += 1
                    p.poll(0)
                p.flush(30)
                wait_applied([w], topic, sent, stall_s=120)
                before = len([a for _, a in reader.seen if a.get("signal") == "camera.silent"])
                deadline = time.time() + args.after + 60
                while time.time() < deadline:
                    hits = [(t, a) for t, a in reader.seen if a.get("signal") == "camera.silent"]
                    if len(hits) > before:
                        delays.append(hits[-1][0] - last_ack[0])
                        quiet.append(float(hits[-1][1].get("statistic", float("nan"))))
                        break
                    time.sleep(0.05)
                else:
                    print(f"# no camera.silent within {args.after + 60:g} s; see {tmp}")
        finally:
            p.flush(10)
            del p  # before the broker stops (its client would log the refused reconnects)
            w.stop()
            reader.close()
            delete_topics(broker.bootstrap, s.topics.all())
    first, delays, quiet = delays[:1], delays[1:], quiet[1:]
    if delays:
        print(f"| camera.silent (SILENT_AFTER_S {args.after:g} s; real worker, "
              f"`python -m bench.bench_silent`) | {len(delays)}/{args.silences} | "
              f"{np.median(delays):.1f} s | {np.percentile(delays, 90):.1f} s | quiet seconds "
              f"in the alerts: {', '.join(f'{q:.1f}' for q in quiet)} |")
    print(f"# delays s: {', '.join(f'{d:.2f}' for d in delays)} (the first silence, worker "
          f"start-up included, not counted: {', '.join(f'{d:.2f}' for d in first)}); logs: {tmp}")


if __name__ == "__main__":
    main()
