"""Read whole topics to their end, the way a restore must: no deadline, no partial read.

A worker restoring its streams reads the state topic (their snapshots) and
the alerts topic (what they already emitted) from the beginning of every
partition to its end. "The end" is tracked here, not taken from the high
watermark alone: a partition is done when a poll has returned nothing for
``quiet_s`` *and* the watermark is not beyond the last offset read. Tansu can
under-report a high watermark right after a batched produce (3 records ->
watermark 2), never over-report it; Apache Kafka reports it exactly, where
the quiet period only costs its ``quiet_s``.

A broker that does not answer is retried (and logged) until it does: a
worker that started its streams from a partial restore would apply their
history again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from driftline.kafka_config import client_options, consumer_config
from driftline.settings import Settings

log = logging.getLogger("driftline.worker")

OnRecord = Callable[[Message], None]


def read_to_end(
    settings: Settings,
    handlers: Mapping[str, OnRecord],
    *,
    quiet_s: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    client_id: str = "driftline-restore",
    tail: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Feed every record of each topic in ``handlers`` to its handler, in offset order.

    Every partition of every topic is read from its beginning (or, for a
    topic in ``tail``, from that many records before its end) to its end, in
    one consumer (one quiet period for all). Returns the number of partitions
    read per topic (``{}`` when ``stop()`` became true before the topics
    were found).
    """
    consumer = Consumer(consumer_config(settings.bootstrap_servers,
                                        f"{settings.consumer_group}.restore",
                                        client_id=client_id,
                                        options=client_options(settings)))
    try:
        parts = _partitions(consumer, list(handlers), stop, tail or {})
        if parts is None:
            return {}
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING if (t not in (tail or {}))
                                        else start) for (t, p), start in parts.items()])
        next_offset = {tp: low for tp, low in parts.items()}
        last_record = last_log = time.monotonic()
        while not stop():
            msg = consumer.poll(0.2)
            now = time.monotonic()
            if msg is None:
                if now - last_record < quiet_s:
                    continue
                try:
                    behind = {tp: high for tp in parts
                              if (high := consumer.get_watermark_offsets(
                                  TopicPartition(*tp), timeout=10, cached=False)[1])
                              > next_offset[tp]}
                except KafkaException as exc:
                    log.warning("restore: watermarks unavailable (%s); retrying", exc)
                    continue
                if not behind:
                    break
                if now - last_log > 10.0:
                    last_log = now
                    log.info("restore: still reading (read up to %s, ends at least %s)",
                             next_offset, behind)
                continue
            if msg.error():
                log.warning("restore: error reading %s: %s", msg.topic(), msg.error())
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            next_offset[(topic, partition)] = offset + 1
            last_record = now
            handlers[topic](msg)
        counts: dict[str, int] = {}
        for topic, _ in parts:
            counts[topic] = counts.get(topic, 0) + 1
        return counts
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topics: list[str], stop: Callable[[], bool],
                tail: Mapping[str, int]) -> dict[tuple[str, int], int] | None:
    """Every partition of ``topics`` with where to start (low watermark, or ``tail`` from the end).

    Retried until all exist. (Tansu may report a high watermark short: a tail
    then starts a little earlier, never later.)
    """
    while True:
        try:
            found: dict[tuple[str, int], int] = {}
            for topic in topics:
                meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    raise LookupError(f"topic {topic} not available yet "
                                      f"({None if meta is None else meta.error})")
                for p in sorted(meta.partitions):
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                               timeout=10)
                    found[(topic, p)] = max(low, high - tail[topic]) if topic in tail else low
            return found
        except (KafkaException, LookupError) as exc:
            log.warning("restore: %s; retrying", exc)
        if stop():
            return None
        time.sleep(1.0)
