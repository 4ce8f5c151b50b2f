"""A broker outage at the edge: bounded buffering, the oldest dropped and counted, then delivered.

The publisher starts while nothing listens on the broker's port (the broker
is down); a real Tansu broker is then started on that port and what the
outbox kept is delivered, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.local_infra import LocalBroker, ensure_topics, free_port
from driftline.settings import Topics
from producers.outbox import Outbox
from producers.publisher import Publisher
from schemas.events import Prediction
from schemas.wire import decode_as, encode

pytestmark = pytest.mark.integration


def test_an_outage_keeps_the_newest_events_within_bounds(tmp_path: Path) -> None:
    port = free_port()
    # Retried in flight for minutes; librdkafka retries the connection every second.
    pub = Publisher(f"127.0.0.1:{port}", delivery_timeout_ms=120_000,
                    reconnect_backoff_max_ms=1000, reconnect_backoff_ms=100)
    box = Outbox(pub, max_buffered=5, max_in_flight=3)
    topics = Topics(prefix="t-outage")
    for i in range(20):
        ev = Prediction(event_id=f"p{i}", stream_id="cam-1", top_class="cat", confidence=0.5,
                        frame_index=i)
        box.put(topics.predictions, b"cam-1", encode(ev))
    # 3 handed to the producer, 5 waiting, the 12 oldest waiting ones dropped.
    assert (box.dropped, len(box.queue), pub.in_flight) == (12, 5, 3)

    with LocalBroker(port=port, log_dir=tmp_path) as broker:
        ensure_topics(broker.bootstrap, topics, 1)
        assert box.drain(60.0), f"{box.pending} still pending"
        pub.flush(10)
        assert (pub.delivered, pub.failed) == (8, 0)
        got = _read(broker.bootstrap, topics.predictions, 8)
    assert [decode_as(Prediction, v).frame_index for v in got] == [0, 1, 2, 15, 16, 17, 18, 19]


def _read(bootstrap: str, topic: str, n: int) -> list[bytes]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from driftline.kafka_config import consumer_config

    c = Consumer(consumer_config(bootstrap, "outage-reader"))
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[bytes] = []
        for _ in range(200):
            m = c.poll(0.1)
            if m is not None and not m.error():
                out.append(m.value() or b"")
            if len(out) >= n:
                break
        return out
    finally:
        c.close()
