"""Read whole topics to their end, the way a restore must: no deadline, no partial read.

A worker restoring its streams reads the state topic (their snapshots) and
the alerts topic (what they already emitted) from the beginning of every
partition to its end: the end each partition had when the read started,
fixed then, so that a fleet's other workers writing to the same topics all
the time cannot keep a restore reading forever.

That end is tracked here, not taken from the high watermark alone. Tansu
under-reports a high watermark after a batched produce, never over-reports
it: it answers one past the *first* record of the partition's last batch
(3 records in one batch -> 1), until the next batch comes, however long one
waits. So a partition is done once the read reached its start's watermark
and either no record came on it for ``quiet_s`` (the rest of that batch
comes with its first record) or a later watermark showed a batch appended
since the start: the start's records all lie before that batch, and the read
stops at its first record (``_End``). Apache Kafka reports watermarks
exactly; there a partition costs at most the quiet period.

The watermarks are asked on a client of their own (``marks``), never on the
reading consumer's connection: a broker answers a connection's requests in
order, and the reader always has a fetch in flight, which the broker holds
``fetch.wait.max.ms`` (500 ms) when its partitions have nothing new. Asked
there, every look at a watermark waited for that fetch; and with the next
round of looks due at once (its clock was taken before the round), a restore
read one record per round, 0.5 s per partition still pending: 18 and 28 s
for the ~80 snapshots of ``bench/bench_zombie.py``'s thawed worker, 1.1 to
1.3 s now (``tests/integration/test_topic_reader.py``).

A broker that does not answer is retried (and logged) until it does: a
worker that started its streams from a partial restore would apply their
history again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

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
    """Feed every record each topic in ``handlers`` held at the start to its handler, in order.

    Every partition of every topic is read from its beginning (or, for a
    topic in ``tail``, from that many records before its end) to the end it
    had when the read started (see the module docstring), in one consumer;
    the watermarks are asked on a second one (see the module docstring).
    Records written during the read may be fed too, never those past a
    partition's fixed target. Returns the number of partitions read per
    topic (``{}`` when ``stop()`` became true before the topics were found).
    """
    def client(suffix: str) -> Consumer:
        # Assigned partitions only, never subscribed: neither joins the group.
        return Consumer(consumer_config(settings.bootstrap_servers,
                                        f"{settings.consumer_group}.restore",
                                        client_id=client_id + suffix,
                                        options=client_options(settings)))

    consumer = client("")
    marks: Consumer | None = None
    try:
        # Watermarks only: no fetch of its own for a ListOffsets to wait behind.
        marks = client("-watermarks")
        parts = _partitions(marks, list(handlers), stop, tail or {})
        if parts is None:
            return {}
        # From the start found (the low watermark, or the tail's): no lookup of
        # OFFSET_BEGINNING queued behind the first fetch before a record comes.
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in parts.items()])
        now = time.monotonic()
        ends = {tp: _End(start, high, now) for tp, (start, high) in parts.items()}
        pending = {tp for tp, end in ends.items() if not end.done(now, quiet_s)}
        last_check = last_log = now
        while pending and not stop():
            msg = consumer.poll(0.2)
            now = time.monotonic()
            if msg is not None and msg.error():
                log.warning("restore: error reading %s: %s", msg.topic(), msg.error())
            elif msg is not None:
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if (topic is not None and partition is not None and offset is not None
                        and (topic, partition) in pending
                        and ends[(topic, partition)].take(offset, now)):
                    handlers[topic](msg)
                if now - last_check < CHECK_S:
                    continue
            try:
                for tp in sorted(pending):
                    if ends[tp].target is None:
                        ends[tp].saw_watermark(marks.get_watermark_offsets(
                            TopicPartition(*tp), timeout=10, cached=False)[1])
            except KafkaException as exc:
                log.warning("restore: watermarks unavailable (%s); retrying", exc)
            # Timed from the round's end: a slow round (a broker answering late)
            # still leaves CHECK_S of reading before the next, not one record.
            last_check = now = time.monotonic()
            done = {tp for tp in pending if ends[tp].done(now, quiet_s)}
            if done:
                consumer.pause([TopicPartition(*tp) for tp in done])
                pending -= done
            if pending and now - last_log > 10.0:
                last_log = now
                log.info("restore: still reading (partition: next offset, end) %s", {
                    f"{t}[{p}]": ends[(t, p)].progress()
                    for t, p in sorted(pending)[:10]})
        counts: dict[str, int] = {}
        for topic, _ in parts:
            counts[topic] = counts.get(topic, 0) + 1
        return counts
    finally:
        if marks is not None:
            marks.close()
        consumer.close()


CHECK_S = 0.25
"""Seconds between two looks at the pending partitions' watermarks while records come in."""


class _End:
    """Where one partition's read ends: fixed from what it held when the read started.

    ``high`` is its watermark at the start; the records it held then end at
    or after it (the broker may under-report, see the module docstring). The
    read of the partition is done once it reached ``high`` and either

    - no record came for ``quiet_s`` (the rest of its last batch would have
      come with the batch's first record), or
    - a later watermark was beyond ``high``: a batch was appended since the
      start, so the records of the start all lie before that batch's first
      record, at or before the later watermark minus one. That ``target`` is
      taken once and never moves, so writers that never pause cannot keep
      the read going.

    Records at or past the target are not fed: they were all written after
    the read started, and a restore needs none of them. A restoring worker
    needs the snapshots, alerts and dead letters of the partitions it was
    just given; their previous owner (this worker's own previous
    incarnation, or another worker, which delivers its last snapshot before
    its partitions are revoked) wrote them before the assignment, so before
    the target. Records after it are other workers' (streams this worker
    does not own) or a zombie's (a worker expelled from the group that still
    writes for a stream now here); the restore, ending at the start's end,
    never waits for them: "reading until every partition is quiet" never
    ended while the fleet wrote, and the worker never started its streams.
    """

    def __init__(self, start: int, high: int, now: float) -> None:
        self.start, self.next_offset, self.high = start, start, high
        self.target: int | None = None
        self.last_record = now

    def take(self, offset: int, now: float) -> bool:
        """Record ``offset`` read at ``now``; whether it is to be fed (before the target)."""
        if self.target is not None and offset >= self.target:
            self.next_offset = max(self.next_offset, offset + 1)
            return False
        self.next_offset, self.last_record = offset + 1, now
        return True

    def saw_watermark(self, high: int) -> None:
        """A watermark fetched now: one beyond the start's fixes the target (once)."""
        if self.target is None and high > self.high:
            self.target = high - 1

    def progress(self) -> tuple[int, int]:
        """The next offset to read and the end known so far (the target, else the start's)."""
        return self.next_offset, self.high if self.target is None else self.target

    def done(self, now: float, quiet_s: float) -> bool:
        """Whether every record the partition held at the start was read."""
        if self.high <= self.start:  # empty (or a tail of nothing) at the start
            return True
        if self.target is not None:
            return self.next_offset >= self.target
        return self.next_offset >= self.high and now - self.last_record >= quiet_s


def _partitions(consumer: Consumer, topics: list[str], stop: Callable[[], bool],
                tail: Mapping[str, int]) -> dict[tuple[str, int], tuple[int, int]] | None:
    """Every partition of ``topics``: where to start (low watermark, or ``tail`` from the end)
    and its high watermark now.

    Retried until all exist. (Tansu may report a high watermark short: a tail
    then starts a little earlier, never later.)
    """
    while True:
        try:
            found: dict[tuple[str, int], tuple[int, int]] = {}
            for topic in topics:
                meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    raise LookupError(f"topic {topic} not available yet "
                                      f"({None if meta is None else meta.error})")
                for p in sorted(meta.partitions):
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                               timeout=10, cached=False)
                    found[(topic, p)] = (max(low, high - tail[topic]) if topic in tail else low,
                                         high)
            return found
        except (KafkaException, LookupError) as exc:
            log.warning("restore: %s; retrying", exc)
        if stop():
            return None
        time.sleep(1.0)
