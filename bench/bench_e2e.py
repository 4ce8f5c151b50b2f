"""The worker end to end against the raw broker relay, in one run, on one embedded broker.

Edge predictions (512-d ``Prediction.embedding`` plus top-5 scores, ~4 KB as
JSON lists, ~1.4 KB with ``--encoding f16``) are produced to a real Tansu
broker. Side by side, on the same messages:

- **raw relay**: confluent-kafka consumes them and re-produces each to
  another topic (what a do-nothing worker costs on this broker);
- **worker**: a real ``driftline worker`` subprocess consumes them
  (backlog: every event is produced before the worker starts), through
  decode, the stream monitors, snapshots and offset commits. Throughput is
  taken between two progress marks read from its ``/metrics`` (after the
  warm-up events, and at the end), and its CPU time (utime + stime of the
  process, all threads) over the same interval gives events/s per core.

At 1,000 streams the worker's resident set is read at the end (every
stream past its warm-up) and divided by the streams; state bytes per event
come from its ``driftline_snapshot_bytes`` histogram.

Alert latency: a second worker run at 50% of the measured 10-stream rate,
with ``driftline sinks`` running and delivering to a real HTTP webhook
receiver in this process; every stream shifts once after its warm-up; the
latency of an alert is the time from the publish of the event that fired
it (``detected_event_id``) to the webhook's arrival.

Scale-out (``--scale-out``): 1 worker on a 4-partition backlog, then a
second worker joins; events/s before and after, and the hand-over (from the
second worker's start to its first applied event, restore included).

Benchmark topics are deleted after each run (Tansu's memory engine keeps
everything). Commands::

    python bench/bench_e2e.py                    # the table (10 and 1,000 streams)
    python bench/bench_e2e.py --encoding f16     # same, embeddings as base64 float16
    python bench/bench_e2e.py --scale-out        # 1 vs 2 workers
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from driftline.kafka_config import consumer_config
from driftline.local_infra import LocalBroker, LocalRedis, ensure_topics, free_port, settings_env
from driftline.settings import Settings
from sinks.webhook_receiver import Delivery, WebhookReceiver

DIM = 512
LATENCY_STREAMS = 50
PARTITIONS = 4
CLASSES = ["car", "bus", "truck", "person", "bicycle"]
SECRET = "whsec_" + base64.b64encode(b"bench-e2e-secret-key").decode()
TICKS = os.sysconf("SC_CLK_TCK")


# -- events -------------------------------------------------------------------------

@dataclass
class Stream:
    sid: str
    base: np.ndarray
    shift_at: int | None = None  # stream index from which the stream is shifted
    n: int = 0


def make_streams(n: int, seed: int = 0) -> list[Stream]:
    rng = np.random.default_rng(seed)
    return [Stream(f"cam-{i:04d}", rng.normal(size=DIM).astype(np.float32)) for i in range(n)]


def next_event(s: Stream, rng: np.random.Generator, encoding: str) -> tuple[bytes, str, bytes]:
    """(key, event_id, value) of the stream's next edge prediction."""
    i = s.n
    s.n += 1
    shifted = s.shift_at is not None and i >= s.shift_at
    vec = s.base + rng.normal(scale=0.5, size=DIM).astype(np.float32)
    p = rng.dirichlet(np.ones(5) * (0.5 if not shifted else 5.0))
    p = np.sort(p)[::-1]
    if shifted:
        vec = vec + 2.0
    eid = f"{s.sid}-{i}"
    emb: object
    if encoding == "f16":
        emb = {"dtype": "float16", "data": base64.b64encode(vec.astype("<f2").tobytes()).decode()}
    else:
        emb = np.round(vec.astype(np.float64), 5).tolist()
    value = orjson.dumps({
        "kind": "prediction", "event_id": eid, "stream_id": s.sid, "model_version": "v1",
        "frame_index": i, "top_class": CLASSES[0 if not shifted else 3],
        "confidence": float(p[0]), "scores": dict(zip(CLASSES, map(float, p), strict=True)),
        "embedding": emb,
    })
    return s.sid.encode(), eid, value


def round_robin(streams: list[Stream], per_stream: int, rng: np.random.Generator,
                encoding: str) -> list[tuple[bytes, str, bytes]]:
    return [next_event(s, rng, encoding) for _ in range(per_stream) for s in streams]


# -- broker helpers -----------------------------------------------------------------

def producer(bootstrap: str, linger_ms: int = 5) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms,
                     "enable.idempotence": True, "acks": "all",
                     "queue.buffering.max.kbytes": 1 << 20, "batch.size": 1 << 20,
                     "message.max.bytes": 16 << 20})


def produce_all(bootstrap: str, topic: str, events: list[tuple[bytes, str, bytes]]) -> float:
    """Produce and flush; returns msg/s."""
    p = producer(bootstrap)
    t0 = time.perf_counter()
    for key, _, value in events:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(120)
    return len(events) / (time.perf_counter() - t0)


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    todo = [n for n in names if n in existing]
    if todo:
        for fut in admin.delete_topics(todo, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception as exc:  # reported, the run goes on
                print(f"# delete topic failed: {exc}", file=sys.stderr)


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, PARTITIONS, 1)]).values():
        fut.result(30)


def raw_relay(bootstrap: str, events: list[tuple[bytes, str, bytes]]) -> tuple[float, float, float]:
    """(produce msg/s, relay msg/s, relay msg/s per core) of the same messages."""
    tag = uuid.uuid4().hex[:6]
    src, dst = f"bench.raw.{tag}.in", f"bench.raw.{tag}.out"
    create_topic(bootstrap, src)
    create_topic(bootstrap, dst)
    try:
        produced = produce_all(bootstrap, src, events)
        c = Consumer(consumer_config(bootstrap, f"raw-{tag}", **{"fetch.max.bytes": 64 << 20}))
        parts = c.list_topics(src, timeout=10).topics[src].partitions
        c.assign([TopicPartition(src, q, OFFSET_BEGINNING) for q in parts])
        p = producer(bootstrap)
        n = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        while n < len(events):
            for m in c.consume(500, 1.0):
                if m.error():
                    continue
                while True:
                    try:
                        p.produce(dst, m.value(), m.key())
                        break
                    except BufferError:
                        p.poll(0.01)
                n += 1
            p.poll(0)
        p.flush(120)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        c.close()
        return produced, n / wall, n / cpu
    finally:
        delete_topics(bootstrap, [src, dst])


# -- the worker ---------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def scrape(port: int) -> dict[str, float]:
    """Sample name (labels folded) -> summed value."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name
            if s.name == "driftline_events_in_total":
                key = f"in:{s.labels['topic']}"
            out[key] = out.get(key, 0.0) + s.value
    return out


class Worker:
    def __init__(self, settings: Settings, log: Path, extra: dict[str, str]) -> None:
        self.port = free_port()
        env = settings_env(settings.model_copy(update={"metrics_port": self.port}))
        env.update(extra)
        self.log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "driftline", "worker"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def applied(self, topic: str) -> float:
        return scrape(self.port).get(f"in:{topic}", 0.0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def wait_applied(workers: list[Worker], topic: str, target: float, stall_s: float = 90.0
                 ) -> float:
    """Block until the workers together consumed ``target`` events of ``topic``; the count."""
    last, last_change = -1.0, time.monotonic()
    while True:
        n = sum(w.applied(topic) for w in workers)
        if n >= target:
            return n
        if n != last:
            last, last_change = n, time.monotonic()
        if time.monotonic() - last_change > stall_s:
            raise RuntimeError(f"worker stalled at {n:.0f}/{target:.0f} events of {topic}")
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker exited {w.proc.returncode}; see {w.log.name}")
        time.sleep(0.5)  # each scrape costs the worker CPU: not too often


def bench_settings(bootstrap: str, prefix: str, redis_url: str = "redis://127.0.0.1:1/0"
                   ) -> Settings:
    return Settings(bootstrap_servers=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                    partitions=PARTITIONS, consumer_group=f"{prefix}.g")


MONITOR_ENV = {
    # Events are stamped when built (no real-time rate): a fixed ERT and no
    # persistence, so that detection does not depend on the producer's speed.
    "DRIFTLINE_MONITOR__ERT": "10000",
    "DRIFTLINE_MONITOR__MIN_DURATION": "0",
    "DRIFTLINE_MONITOR__EDGE_DIMS": '{"*": 512}',
}


@dataclass
class WorkerRun:
    streams: int
    events: int
    rate: float
    per_core: float
    state_bytes_per_event: float
    rss_per_stream_mb: float | None
    rss_mb: float


def worker_run(bootstrap: str, streams: int, warm_per_stream: int, measure_per_stream: int,
               encoding: str, tmp: Path, rng: np.random.Generator) -> WorkerRun:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    s = bench_settings(bootstrap, prefix)
    ensure_topics(bootstrap, s.topics, PARTITIONS)
    topic = s.topics.predictions
    try:
        ss = make_streams(streams, seed=streams)
        warm = round_robin(ss, warm_per_stream, rng, encoding)
        produce_all(bootstrap, topic, warm)
        measure = round_robin(ss, measure_per_stream, rng, encoding)
        produce_all(bootstrap, topic, measure)
        w = Worker(s, tmp / f"worker-{streams}.log", MONITOR_ENV)
        try:
            wait_applied([w], topic, len(warm), stall_s=180)
            base = scrape(w.port)
            cpu0, t0 = cpu_seconds(w.proc.pid), time.perf_counter()
            wait_applied([w], topic, len(warm) + len(measure), stall_s=180)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(w.proc.pid) - cpu0
            time.sleep(7)  # the last snapshots (STATE_INTERVAL_S) are sent
            end = scrape(w.port)
            rss = rss_bytes(w.proc.pid)
        finally:
            w.stop()
        n = len(measure)
        state = end.get("driftline_snapshot_bytes_sum", 0.0)
        total = len(warm) + len(measure)
        del base
        return WorkerRun(streams, n, n / wall, n / cpu, state / total,
                         rss / streams / 1e6 if streams >= 100 else None, rss / 1e6)
    finally:
        delete_topics(bootstrap, s.topics.all())


# -- alert latency --------------------------------------------------------------------

def latency_run(bootstrap: str, rate: float, streams: int, encoding: str, tmp: Path,
                rng: np.random.Generator) -> tuple[list[float], int]:
    """Latencies (s) from the firing event's publish to the webhook, at ``rate`` events/s."""
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    with LocalRedis(log_dir=tmp) as redis:
        s = bench_settings(bootstrap, prefix, redis.url)
        ensure_topics(bootstrap, s.topics, PARTITIONS)
        published: dict[str, float] = {}
        arrivals: list[tuple[float, Delivery]] = []

        def arrived(d: Delivery) -> None:
            arrivals.append((time.time(), d))

        rx = WebhookReceiver(SECRET, before_reply=arrived)
        sinks_log = (tmp / "sinks.log").open("wb")
        env = settings_env(s.model_copy(update={"webhook_url": rx.url}))
        env["DRIFTLINE_WEBHOOK_SECRET"] = SECRET
        sinks = subprocess.Popen([sys.executable, "-m", "driftline", "sinks"], env=env,
                                 stdout=sinks_log, stderr=subprocess.STDOUT)
        w = Worker(s, tmp / "worker-latency.log", MONITOR_ENV)
        try:
            ss = make_streams(streams, seed=7)
            # Past the PCA fit (200) and the reference windows' calibrations
            # (~300): the paced part is the monitors' steady state.
            warm = 600
            for k, st in enumerate(ss):
                st.shift_at = warm + 20 + (k * 7) % 60
            total_per_stream = warm + 140
            events = round_robin(ss, total_per_stream, rng, encoding)
            p = producer(bootstrap, linger_ms=1)
            # Warm-up as fast as the worker takes it, then the paced part.
            head = warm * streams
            for key, _eid, value in events[:head]:
                while True:
                    try:
                        p.produce(s.topics.predictions, value, key)
                        break
                    except BufferError:
                        p.poll(0.01)
                p.poll(0)
            p.flush(60)
            wait_applied([w], s.topics.predictions, head, stall_s=180)
            t0 = time.perf_counter()
            for j, (key, eid, value) in enumerate(events[head:]):
                due = t0 + j / rate
                while (now := time.perf_counter()) < due:
                    time.sleep(min(0.002, due - now))
                published[eid] = time.time()
                p.produce(s.topics.predictions, value, key)
                p.poll(0)
            p.flush(60)
            wait_applied([w], s.topics.predictions, len(events), stall_s=120)
            time.sleep(5)
        finally:
            w.stop()
            sinks.terminate()
            sinks.wait(30)
            sinks_log.close()
            rx.close()
        lat = []
        for at, d in arrivals:
            body = orjson.loads(d.body)
            alert = body.get("data", body) if isinstance(body, dict) else {}
            fired = alert.get("detected_event_id")
            if fired in published:
                lat.append(at - published[fired])
        delete_topics(bootstrap, s.topics.all())
        return lat, len(arrivals)


# -- scale-out --------------------------------------------------------------------------

def scale_out(bootstrap: str, streams: int, encoding: str, tmp: Path,
              rng: np.random.Generator) -> dict[str, float]:
    prefix = f"so{uuid.uuid4().hex[:6]}"
    s = bench_settings(bootstrap, prefix)
    ensure_topics(bootstrap, s.topics, PARTITIONS)
    topic = s.topics.predictions
    out: dict[str, float] = {}
    try:
        ss = make_streams(streams, seed=3)
        events = round_robin(ss, 3000, rng, encoding)
        produce_all(bootstrap, topic, events)
        a = Worker(s, tmp / "worker-a.log", MONITOR_ENV)
        workers = [a]
        try:
            # Past every stream's warm-up and first calibrations (~400 events).
            wait_applied(workers, topic, len(events) * 0.3, stall_s=600)
            n0, t0 = a.applied(topic), time.perf_counter()
            wait_applied(workers, topic, len(events) * 0.4, stall_s=300)
            out["one_worker_ev_s"] = (a.applied(topic) - n0) / (time.perf_counter() - t0)
            b = Worker(s, tmp / "worker-b.log", MONITOR_ENV)
            workers.append(b)
            while b.applied(topic) == 0 and time.monotonic() - b.started < 120:
                time.sleep(0.1)
            out["handover_s"] = time.monotonic() - b.started
            n1, t1 = sum(w.applied(topic) for w in workers), time.perf_counter()
            wait_applied(workers, topic, len(events) * 0.97, stall_s=300)
            out["two_workers_ev_s"] = (sum(w.applied(topic) for w in workers) - n1) / (
                time.perf_counter() - t1)
            wait_applied(workers, topic, len(events), stall_s=300)
            time.sleep(7)
            out["applied_total"] = sum(w.applied(topic) for w in workers)
            out["events"] = len(events)
        finally:
            for w in workers:
                w.stop()
        return out
    finally:
        delete_topics(bootstrap, s.topics.all())


# -- main ---------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoding", choices=["list", "f16"], default="list")
    ap.add_argument("--streams", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--warm", type=int, nargs="+", default=[2200, 220],
                    help="warm-up events per stream, one per --streams value")
    ap.add_argument("--events", type=int, default=30_000, help="measured events per run")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--scale-out", action="store_true", help="1 vs 2 workers instead")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    with LocalBroker(log_dir=tmp) as broker:
        bootstrap = broker.bootstrap
        if args.scale_out:
            r = scale_out(bootstrap, args.streams[0], args.encoding, tmp, rng)
            print(f"# scale-out, {args.streams[0]} streams x 3,000 events, {PARTITIONS} "
                  f"partitions, "
                  f"encoding {args.encoding}")
            print("| workers | events/s | hand-over s (start → first applied event) |")
            print("|---:|---:|---:|")
            print(f"| 1 | {r['one_worker_ev_s']:,.0f} | |")
            print(f"| 2 | {r['two_workers_ev_s']:,.0f} | {r['handover_s']:.1f} |")
            print(f"# applied {r['applied_total']:,.0f} of {r['events']:,.0f} events "
                  "(more = re-read after the rebalance, skipped by position)")
            return
        sample = round_robin(make_streams(10, seed=99), 2_000, rng, args.encoding)
        size = statistics.mean(len(v) for _, _, v in sample)
        produced, relay, relay_core = raw_relay(bootstrap, sample * 10)
        print(f"# {DIM}-d edge predictions, encoding {args.encoding}, mean {size:,.0f} bytes; "
              f"{PARTITIONS} partitions; Tansu memory engine; {os.cpu_count()} cores")
        print(f"# raw: produce {produced:,.0f} msg/s; consume→re-produce relay {relay:,.0f} "
              f"msg/s ({relay_core:,.0f} per core of the relay process)")
        runs = []
        for n, warm in zip(args.streams, args.warm, strict=True):
            per = max(1, args.events // n)
            runs.append(worker_run(bootstrap, n, warm, per, args.encoding, tmp, rng))
        print()
        print("| measure | " + " | ".join(f"{r.streams:,} streams" for r in runs) + " | goal |")
        print("|---|" + "---:|" * len(runs) + "---|")
        print("| warm-up events per stream, then measured | " + " | ".join(
            f"{w:,} + {r.events // r.streams:,}" for w, r in zip(args.warm, runs, strict=True))
            + " | |")
        print("| worker events/s | " + " | ".join(f"{r.rate:,.0f}" for r in runs) + " | |")
        print("| events/s per worker core | " + " | ".join(f"{r.per_core:,.0f}" for r in runs)
              + " | ≥ 5,000 |")
        print("| ratio to raw relay | " + " | ".join(f"{r.rate / relay:.0%}" for r in runs)
              + " | ≥ 25% |")
        print("| state bytes per input event | "
              + " | ".join(f"{r.state_bytes_per_event:,.0f}" for r in runs) + " | |")
        print("| worker RSS MB (end) | " + " | ".join(f"{r.rss_mb:,.0f}" for r in runs) + " | |")
        print("| RSS per stream MB | " + " | ".join(
            "" if r.rss_per_stream_mb is None else f"{r.rss_per_stream_mb:.2f}" for r in runs)
            + " | ≤ 2 |")
        if not args.no_latency:
            rate = 0.5 * runs[0].rate
            lat, delivered = latency_run(bootstrap, rate, LATENCY_STREAMS, args.encoding, tmp, rng)
            if lat:
                q = np.percentile(lat, [50, 99])
                print(f"| alert latency p50 / p99 s ({LATENCY_STREAMS} streams at {rate:,.0f} ev/s "
                      f"= 50% of the {runs[0].streams}-stream rate; {len(lat)} alerts) | "
                      f"{q[0]:.2f} / {q[1]:.2f} | ≤ 1 (p99) |")
            else:
                print(f"# latency: no alert matched ({delivered} webhooks); see {tmp}")
        print(f"# logs: {tmp}")


if __name__ == "__main__":
    main()
