"""A restore ends while a fleet keeps writing to the topics it reads.

A worker's restore reads the state, alerts and dead-letter topics to their
end. It used to end only when *no* partition had received a record for a
quiet period: in a fleet, other workers write snapshots, alerts and dead
letters all the time, so a restarting worker read forever and never started
its streams (measured on the old reader with this test: still reading after
its 20 s allowance). Here a real producer thread writes to every partition
of the three topics every 50 ms during the restore, on a real broker; the
records produced before it started end in one batch per partition (the
embedded broker then reports a high watermark short of that batch), and
every one of them must be delivered.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from driftline.kafka_config import consumer_config
from driftline.settings import Settings
from processors.stream_app import read_restore_topics
from producers.publisher import Publisher

pytestmark = pytest.mark.integration

BURST = 12  # records per topic every 50 ms, one batch per partition
ALLOWANCE_S = 20.0  # the test's own stop: the old reader reached it, still reading
BOUND_S = 8.0  # what a restore of these few records may take with its quiet period


class FleetWriter(threading.Thread):
    """Other workers of the fleet: bursts of snapshots, alerts and dead letters every 50 ms.

    A burst goes out as one batch per partition. ``hold`` makes the writer
    wait, its last burst acknowledged (``held``), until ``resume``: the test
    starts the restore right there, at the broker's trap (a watermark short
    of that batch), and the restore's first look at ``stop`` resumes the
    writes. ``acked`` holds each record's topic, partition, offset and value.
    """

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        super().__init__(daemon=True)
        self.settings, self.topics = settings, topics
        self.stop, self.hold, self.held, self.resume = (threading.Event() for _ in range(4))
        self.rounds = 0
        self.acked: list[tuple[str, int, int, bytes]] = []

    def _report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked.append((msg.topic(), msg.partition(), msg.offset(), msg.value()))

    def run(self) -> None:
        with Publisher(self.settings.bootstrap_servers, linger_ms=5,
                       on_delivery=self._report) as pub:
            while not self.stop.is_set():
                for topic in self.topics:
                    for j in range(BURST):
                        value = f"{self.rounds}-{j}".encode()
                        pub.publish_raw(topic, value, value)
                self.rounds += 1
                if self.hold.is_set() and not self.resume.is_set():
                    pub.flush()
                    self.held.set()
                    self.resume.wait(30)
                pub.poll(0)
                self.stop.wait(0.05)


def _short_watermarks(settings: Settings, acked: list[tuple[str, int, int, bytes]]) -> int:
    """Partitions whose reported high watermark is short of their records (the broker's trap)."""
    last: dict[tuple[str, int], int] = {}
    for topic, partition, offset, _ in acked:
        last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    c = Consumer(consumer_config(settings.bootstrap_servers, f"{settings.consumer_group}.w"))
    try:
        return sum(c.get_watermark_offsets(TopicPartition(*tp), timeout=10, cached=False)[1]
                   < offset + 1 for tp, offset in last.items())
    finally:
        c.close()


def test_a_restore_ends_while_the_fleet_writes(settings: Settings, use_docker: bool):
    t = settings.topics
    topics = [t.state, t.alerts, t.dead_letter]
    writer = FleetWriter(settings, topics)
    writer.start()
    try:
        while len(writer.acked) < 10 * BURST * len(topics):  # the fleet has been writing
            time.sleep(0.05)
        writer.hold.set()
        assert writer.held.wait(30)
        before = list(writer.acked)
        if not use_docker:  # Apache Kafka reports its watermarks exactly
            assert _short_watermarks(settings, before) == 6, "the broker's trap not set"
        alerts: list[bytes] = []
        letters: list[bytes] = []
        started = time.monotonic()
        rounds = writer.rounds

        def stop() -> bool:
            writer.resume.set()
            return time.monotonic() - started > ALLOWANCE_S

        latest, counts = read_restore_topics(
            settings, stop=stop, alerts=lambda m: alerts.append(m.value()),
            dead_letters=lambda m: letters.append(m.value()))
        took = time.monotonic() - started
        during = writer.rounds - rounds
    finally:
        writer.stop.set()
        writer.resume.set()
        writer.join(10)
    print(f"restore took {took:.2f}s while the fleet wrote {during * BURST} records to each "
          f"topic; {len(before)} were there before")
    assert took < BOUND_S, f"restore still reading after {took:.1f}s ({during} rounds written)"
    assert counts == {topic: 2 for topic in topics}
    got = {t.state: set(latest.values()), t.alerts: set(alerts), t.dead_letter: set(letters)}
    missing = [(topic, p, offset) for topic, p, offset, value in before if value not in got[topic]]
    assert missing == [], f"{len(missing)} of {len(before)} records before the start not read"


SNAPSHOTS = 40  # state records before the restore, each its own batch
PACE_ALLOWANCE_S = 15.0  # the test's own stop: the old reader had read 14 records by then
PACE_BOUND_S = 6.0  # 40 small records and a 1 s quiet period, on a loaded machine


def test_a_restore_reads_at_the_pace_of_its_fetches(settings: Settings):
    """A restore's records come as fast as the broker hands them over.

    The restore reads the state topic with the alerts and the dead-letter
    tail, as ``StateRestorer.ensure`` does. Its look at a partition's
    watermark (a ListOffsets) used to go out on the reading consumer's own
    connection, where it waits behind the fetch in flight: a broker answers
    a connection's requests in order, and a fetch of partitions that have
    nothing new waits ``fetch.wait.max.ms`` (500 ms) on the broker. With the
    next look due at once after such a round (its clock taken before the
    round), every record read cost a round: one record per 0.5 s per
    partition still pending, the 12 to 34 s restores after a thaw
    (``bench/bench_zombie.py``); measured on the old reader with this test:
    14 of the 40 records read when its 15 s allowance ran out (now ~1 s,
    the quiet period).
    """
    t = settings.topics
    with Publisher(settings.bootstrap_servers, linger_ms=0) as pub:
        for i in range(SNAPSHOTS):
            pub.publish_raw(t.state, f"stream-{i}|v1".encode(), bytes(2048))
            pub.flush()
    alerts: list[bytes] = []
    letters: list[bytes] = []
    started = time.monotonic()
    latest, counts = read_restore_topics(
        settings, stop=lambda: time.monotonic() - started > PACE_ALLOWANCE_S,
        alerts=lambda m: alerts.append(m.value()),
        dead_letters=lambda m: letters.append(m.value()))
    took = time.monotonic() - started
    print(f"restore of {SNAPSHOTS} snapshots took {took:.2f}s")
    assert len(latest) == SNAPSHOTS, f"{len(latest)} of {SNAPSHOTS} read in {took:.1f}s"
    assert took < PACE_BOUND_S, f"restore took {took:.1f}s"
    assert counts == {t.state: 2, t.alerts: 2, t.dead_letter: 2}
    assert alerts == letters == []
