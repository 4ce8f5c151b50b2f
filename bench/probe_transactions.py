"""Does the embedded broker (Tansu) isolate Kafka transactions? A probe, printed as a table.

Why it matters: exactly-once outputs can be had from Kafka transactions
(produce + offset commit in one transaction, consumers with
``isolation.level=read_committed``) only if the broker hides aborted records
from such consumers. driftline uses a read-back of the alerts topic instead
(``processors/emitted_alerts.py``); this probe records why.

Run from the repository root (about 20 s)::

    python bench/probe_transactions.py
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.local_infra import LocalBroker


def read(bootstrap: str, topic: str, isolation: str) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{isolation}",
                  "isolation.level": isolation, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got, end = [], time.monotonic() + 5
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value() or b"")
        return got
    finally:
        c.close()


def main() -> None:
    rows: list[tuple[str, str]] = []
    with LocalBroker() as broker:
        bs = broker.bootstrap
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic("in", 1, 1), NewTopic("out", 1, 1)]).values():
            f.result()
        plain = Producer({"bootstrap.servers": bs})
        plain.produce("in", b"event")
        plain.flush()
        p = Producer({"bootstrap.servers": bs, "transactional.id": "probe"})
        c = Consumer({"bootstrap.servers": bs, "group.id": "probe", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        try:
            p.init_transactions(10)
            rows.append(("InitProducerId", "accepted"))
            p.begin_transaction()
            p.produce("out", b"committed")
            c.assign([TopicPartition("in", 0, 0)])
            c.poll(10)
            p.send_offsets_to_transaction([TopicPartition("in", 0, 1)],
                                          c.consumer_group_metadata(), 10)
            rows.append(("AddOffsetsToTxn / TxnOffsetCommit", "accepted"))
            p.commit_transaction(10)
            rows.append(("EndTxn (commit)", "accepted"))
            committed = c.committed([TopicPartition("in", 0)], 10)[0].offset
            rows.append(("offset committed in the transaction", str(committed)))
            p.begin_transaction()
            p.produce("out", b"aborted")
            p.flush()
            p.abort_transaction(10)
            rows.append(("EndTxn (abort)", "accepted"))
        except KafkaException as exc:
            rows.append(("transactions", f"refused: {exc}"))
        finally:
            c.close()
        for iso in ("read_committed", "read_uncommitted"):
            rows.append((f"{iso} consumer reads",
                         ", ".join(v.decode() for v in read(bs, "out", iso)) or "nothing"))
    print("| step | Tansu |\n|---|---|")
    for step, result in rows:
        print(f"| {step} | {result} |")


if __name__ == "__main__":
    main()
