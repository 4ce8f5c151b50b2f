"""A zombie worker: what an expelled worker that wakes up writes, measured on real processes.

Worker A (a real ``driftline worker``) applies a steady stream of edge
predictions; it is frozen (SIGSTOP) with a backlog for longer than the
group's session timeout (10 s), worker B joins, takes its partitions and
restores their streams, then A is thawed (SIGCONT) and both run on while
the feed goes on; then both stop (SIGTERM). Printed: alert records and
distinct alert ids on the alerts topic, snapshot records per stream, and
*regressions* (a snapshot of a stream written after one that covered more
of its events: the restore keeps the latest per key, so a regression there
is a state that lost events), with which worker's log shows what.

Command (about 1 minute; a private broker on loopback):

    python bench/bench_zombie.py
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from driftline.kafka_config import consumer_config
from driftline.local_infra import LocalBroker, ensure_topics, settings_env
from driftline.settings import Settings
from processors.monitor import MonitorRegistry
from processors.replay import Fired, replay_lines
from processors.stream_app import read_restore_topics
from producers.publisher import Publisher
from schemas.events import Alert, StreamState
from schemas.wire import decode_as, encode
from tests.chaos.test_worker_chaos import MONITOR, edge_stream, wait_for
from tests.integration.processes import spawn, terminate

STREAMS = 8
FROZEN_S = 16.0  # > the 10 s session timeout
PARTITIONS = 4


def _records(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, int, int]]:
    c = Consumer(consumer_config(bootstrap, f"bench-read-{time.time_ns()}"))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out, quiet = [], time.monotonic()
        while time.monotonic() - quiet < 2.0:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            quiet = time.monotonic()
            out.append((m.key() or b"", m.value() or b"", m.partition() or 0, m.offset() or 0))
        return out
    finally:
        c.close()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-zombie-"))
    with LocalBroker(log_dir=tmp) as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap, topic_prefix="zombie",
                            partitions=PARTITIONS, consumer_group="zombie.g",
                            data_dir=tmp / "data", monitor=MONITOR, silent_after_s=0,
                            state_every=20, state_interval_s=2)
        ensure_topics(broker.bootstrap, settings.topics, PARTITIONS)
        env = settings_env(settings)
        streams = {f"edge-{j}": [encode(p) for p in edge_stream(
            f"edge-{j}", 20 + j, flat_at=(60 + 40 * j) if j % 2 else None,
            shift_at=(90 + 30 * j) if j % 2 == 0 else None)] for j in range(STREAMS)}
        lines = [(sid.encode(), ev[i]) for i in range(max(map(len, streams.values())))
                 for sid, ev in streams.items() if i < len(ev)]
        stop_feed = threading.Event()

        def feed() -> None:  # ~80 events a second, until the lines run out
            with Publisher(broker.bootstrap) as pub:
                for i in range(0, len(lines), 16):
                    if stop_feed.is_set():
                        return
                    for key, value in lines[i:i + 16]:
                        pub.publish_raw(settings.topics.predictions, key, value)
                    pub.flush()
                    time.sleep(0.2)

        log_a, log_b = tmp / "a.log", tmp / "b.log"
        a = spawn(["worker", "--loglevel", "info"], env, log_a)
        b = None
        feeder = threading.Thread(target=feed, daemon=True)
        try:
            wait_for(lambda: "restored 0 stream monitors" in log_a.read_text(), 90, "A's start")
            feeder.start()
            wait_for(lambda: "monitor batch:" in log_a.read_text(), 60, "A applying")
            time.sleep(2.0)
            os.kill(a.pid, signal.SIGSTOP)
            frozen = time.monotonic()
            print(f"A frozen; A's log {len(log_a.read_text())} bytes")
            b = spawn(["worker", "--loglevel", "info"], env, log_b)
            wait_for(lambda: "restored" in log_b.read_text()
                     and "monitor batch:" in log_b.read_text(), 90, "B restored and applying",
                     lambda: log_b.read_text()[-3000:])
            time.sleep(max(0.0, FROZEN_S - (time.monotonic() - frozen)))
            a_before = len(log_a.read_text())
            os.kill(a.pid, signal.SIGCONT)
            print(f"A thawed after {time.monotonic() - frozen:.1f}s")
            feeder.join(120)
            time.sleep(5.0)
        finally:
            stop_feed.set()
            os.kill(a.pid, signal.SIGCONT)
            codes = terminate(a, *([b] if b else []), timeout_s=40)
        print("exit codes", codes)
        after = log_a.read_text()[a_before:]
        print("A after its thaw:", [ln[:200] for ln in after.splitlines()
                                    if "monitor batch" in ln or "ALERT" in ln
                                    or "revok" in ln.lower() or "assign" in ln.lower()][:30])
        alerts = [decode_as(Alert, v) for _, v, _, _ in _records(broker.bootstrap,
                                                                 settings.topics.alerts)]
        ids = Counter(a.alert_id for a in alerts)
        dup = {k: n for k, n in ids.items() if n > 1}
        expected = {item.alert.alert_id for item in replay_lines(
            [v for _, v in lines], registry=MonitorRegistry(MONITOR)) if isinstance(item, Fired)}
        print(f"replay's alerts: {len(expected)}; missing on the topic: "
              f"{len(expected - set(ids))}; not replay's: {len(set(ids) - expected)}")
        print(f"alerts: {len(alerts)} records, {len(ids)} distinct ids, "
              f"{sum(dup.values()) - len(dup)} duplicate records {sorted(dup.items())[:5]}")
        snaps = _records(broker.bootstrap, settings.topics.state)
        best: dict[bytes, int] = {}
        regressions = []
        for key, value, part, offset in snaps:
            seen = decode_as(StreamState, value).events_seen
            if seen < best.get(key, -1):
                regressions.append((key.decode(), part, offset, seen, best[key]))
            best[key] = max(best.get(key, -1), seen)
        latest: dict[bytes, int] = {}
        for key, value, _, _ in snaps:
            latest[key] = decode_as(StreamState, value).events_seen
        print(f"snapshots: {len(snaps)} records of {len(best)} streams; regressions "
              f"(a snapshot after one that covered more): {len(regressions)} {regressions[:5]}")
        print("latest snapshot behind the best one:",
              {k.decode(): (latest[k], best[k]) for k in best if latest[k] < best[k]})
        # What a restore installs now (processors.snapshot_order): not the latest.
        restored, _ = read_restore_topics(settings)
        print("a restore now installs a snapshot behind the best one for:",
              {k.decode(): (s.events_seen, best[k]) for k, v in restored.items()
               if (s := decode_as(StreamState, v)).events_seen < best[k]})
        offsets: dict[int, list[int]] = {}
        for _, _, part, offset in snaps:
            offsets.setdefault(part, []).append(offset)
        c = Consumer(consumer_config(broker.bootstrap, "bench-wm"))
        gaps = {p: (c.get_watermark_offsets(TopicPartition(settings.topics.state, p),
                                            timeout=10, cached=False),
                    sorted(set(range(max(o) + 1)) - set(o)))
                for p, o in sorted(offsets.items())}
        c.close()
        print("state topic: (low, high) watermarks and offsets missing:", gaps)
        print("events per stream fed:", len(lines) // STREAMS, "logs in", tmp)


if __name__ == "__main__":
    main()
