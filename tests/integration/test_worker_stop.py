"""A worker stopped with SIGTERM under load exits 0, promptly, with its state committed.

A real ``driftline worker`` consumes a steady stream of edge predictions
(four streams that alert, one still calibrating) from a real broker. Its
snapshots are taken rarely (``STATE_EVERY`` 70, ``STATE_INTERVAL_S`` 60),
so at the SIGTERM most streams hold events applied and not yet in a
snapshot. faust's stop waits for every event in flight to be acked, and
stops the timer that snapshots idle streams first: such a worker waited
for good (seen: 70 min; here, every time). Now the stop snapshots them
(``processors.stream_app``'s drain) and is bounded
(``processors.worker_shutdown``).

Its state is committed: every event it applied is in its stream's last
snapshot on the state topic (the calibrating stream's too), and the group's
committed offsets are right behind the snapshots' positions, so a restart
reads exactly what no snapshot holds (``test_worker_chaos`` restarts workers
on such state). The alerts topic holds replay's alerts over the events it
applied, each once.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from driftline.local_infra import settings_env
from driftline.settings import Settings
from processors.monitor import MonitorRegistry
from processors.replay import Fired, replay_lines
from processors.snapshot_order import positions_of
from producers.publisher import Publisher
from schemas.events import Alert, StreamState
from schemas.wire import decode_as, encode
from tests.chaos.test_worker_chaos import MONITOR, edge_stream, wait_for
from tests.integration.processes import spawn, terminate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STOP_WITHIN_S = 30.0
CALIBRATING = 30  # events of the stream still in its reference window (reference_size 50)
EVENTS = 200  # per alerting stream (their changes start at 70 to 140)


def _recording() -> list[tuple[bytes, bytes]]:
    """(key, value): four edge streams (three drift) and one stream still calibrating."""
    streams = {sid: [encode(p) for p in edge_stream(sid, 10 + j, flat_at=flat,
                                                     shift_at=shift)][:EVENTS]
               for j, (sid, (flat, shift)) in enumerate({
                   "edge-0": (70, None), "edge-1": (None, 100), "edge-4": (80, 140),
                   "edge-5": (None, None)}.items())}
    streams["calib-0"] = [encode(p) for p in edge_stream("calib-0", 9)][:CALIBRATING]
    out = []
    for i in range(max(map(len, streams.values()))):
        out += [(sid.encode(), lines[i]) for sid, lines in streams.items() if i < len(lines)]
    return out


def _applied(log: Path) -> int:
    found = re.findall(r"monitor batch: .* applied (\d+) skipped (\d+)", log.read_text())
    return int(found[-1][0]) if found else 0


def test_sigterm_under_load_exits_0_with_its_state_committed(
    settings: Settings, read_topic, tmp_path: Path
) -> None:
    lines = _recording()
    env = settings_env(settings)
    env.update(
        DRIFTLINE_MONITOR__REFERENCE_SIZE=str(MONITOR.reference_size),
        DRIFTLINE_MONITOR__COOLDOWN=str(MONITOR.cooldown),
        DRIFTLINE_MONITOR__CLASS_MIX_REFERENCE_SIZE=str(MONITOR.class_mix_reference_size),
        DRIFTLINE_MONITOR__EMBEDDING_DIM=str(MONITOR.embedding_dim),
        DRIFTLINE_MONITOR__ERT=str(MONITOR.ert),
        DRIFTLINE_MONITOR__MIN_DURATION=str(MONITOR.min_duration),
        DRIFTLINE_MONITOR__GLOBAL_MIN_DURATION=str(MONITOR.global_min_duration),
        DRIFTLINE_SILENT_AFTER_S="0",
        DRIFTLINE_STATE_EVERY="70",
        DRIFTLINE_STATE_INTERVAL_S="60",
        DRIFTLINE_SHUTDOWN_GRACE_S=str(STOP_WITHIN_S),
    )
    topic = settings.topics.predictions
    resume = threading.Event()  # set once the SIGTERM is sent

    def feed(chunk: int = 50, pause_s: float = 0.2) -> None:
        # A steady stream (~250 events a second); two thirds of it before the
        # SIGTERM (the worker has a backlog then, or applies as it comes), the rest after.
        with Publisher(settings.bootstrap_servers) as pub:
            for i in range(0, len(lines), chunk):
                if i >= 2 * len(lines) // 3:
                    resume.wait(120)
                for key, value in lines[i:i + chunk]:
                    pub.publish_raw(topic, key, value)
                pub.flush()
                time.sleep(pause_s)

    log = tmp_path / "worker.log"
    worker = spawn(["worker", "--loglevel", "info"], env, log)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        # Replay while the worker joins its group.
        replayed = list(replay_lines([v for _, v in lines], registry=MonitorRegistry(MONITOR)))
        tail = lambda: log.read_text()[-3000:]  # noqa: E731
        wait_for(lambda: "restored 0 stream monitors" in log.read_text(), 60, "the start", tail)
        feeder.start()
        wait_for(lambda: _applied(log) >= 300 and "] ALERT " in log.read_text(), 60,
                 "300 events applied and an alert", tail)
        resume.set()  # the rest comes during the stop
        started = time.monotonic()
        [code] = terminate(worker, timeout_s=STOP_WITHIN_S + 15)
        took = time.monotonic() - started
    finally:
        resume.set()
        terminate(worker, timeout_s=5)
    text = log.read_text()
    assert code == 0 and took < STOP_WITHIN_S, (code, took, text[-3000:])
    assert "stopping (SIGTERM): a stop that takes over 30 s ends the process" in text
    # The stop had applied events to snapshot: what used to wait forever.
    assert re.search(r"stopping: snapshotting \d+ streams", text), text[-3000:]

    # Committed: every applied event is in its stream's last snapshot, and the
    # group's committed offsets are right behind them. A restart resumes there:
    # nothing applied twice, nothing lost, no alert fired again.
    records = read_topic(settings.topics.state, 1, timeout_s=10, then_s=1.0)
    latest = {r.key: decode_as(StreamState, r.value) for r in records}
    # Each snapshot names the input it covers in a header, so a restore can
    # tell an expelled worker's late stale snapshot (processors.snapshot_order).
    assert all(positions_of(r.headers) == decode_as(StreamState, r.value).monitor["positions"]
               for r in records)
    seen = {s.stream_id: s.events_seen for s in latest.values()}
    assert sum(seen.values()) == _applied(log) >= 300
    assert 0 < seen["calib-0"] <= CALIBRATING
    assert latest[b"calib-0|v1"].signals["output.confidence"].status == "warming_up"
    covered: dict[int, int] = {}
    for state in latest.values():
        for key, offset in state.monitor["positions"].items():
            part = int(key.rpartition(":")[2])
            covered[part] = max(covered.get(part, -1), offset)
    assert _committed(settings, topic) == {p: o + 1 for p, o in covered.items()}
    # Its alerts are replay's over the events it applied, each once.
    alerts = [decode_as(Alert, r.value).alert_id
              for r in read_topic(settings.topics.alerts, 1, timeout_s=5, then_s=0.5)]
    expected = []
    for item in replayed:
        if isinstance(item, Fired) and item.alert.detected_index < seen[item.alert.stream_id]:
            expected.append(item.alert.alert_id)
    assert expected and sorted(alerts) == sorted(expected), text[-3000:]


def _committed(settings: Settings, topic: str) -> dict[int, int]:
    """The worker group's committed offset per partition of ``topic`` (those it committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from driftline.kafka_config import consumer_config

    c = Consumer(consumer_config(settings.bootstrap_servers, f"{settings.consumer_group}.worker"))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        done = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: tp.offset for tp in done if tp.offset >= 0}
    finally:
        c.close()
