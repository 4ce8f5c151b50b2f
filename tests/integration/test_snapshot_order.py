"""A restore keeps the snapshot covering the most input, not the last one written.

A worker expelled from its group and thawed (a zombie) writes the snapshots
of the batch it held after the new owner's (``bench/bench_zombie.py``). On a
real broker: the owner's snapshot, then the zombie's stale one, then records
of another stream and of an older build (no header); the restore must keep
the owner's for the first stream, the last one written for the others.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from driftline.settings import Settings
from processors.snapshot_order import positions_header
from processors.stream_app import read_restore_topics

pytestmark = pytest.mark.integration


def test_a_stale_snapshot_written_last_is_not_restored(settings: Settings):
    state = settings.topics.state
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    records = [
        (b"cam-1|v1", b"owner", {"t.predictions:0": 100}),
        (b"cam-1|v1", b"zombie", {"t.predictions:0": 36}),  # behind: left out
        (b"cam-2|v1", b"first", {"t.predictions:1": 7}),
        (b"cam-2|v1", b"same positions, later", {"t.predictions:1": 7}),  # an operator command
        (b"cam-3|v1", b"with positions", {"t.predictions:0": 50}),
        (b"cam-3|v1", b"older build", None),  # no header: the last one written
    ]
    for key, value, positions in records:
        headers = positions_header(positions) if positions is not None else None
        producer.produce(state, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0

    latest, counts = read_restore_topics(settings)

    assert counts == {state: 2}
    assert latest == {b"cam-1|v1": b"owner", b"cam-2|v1": b"same positions, later",
                      b"cam-3|v1": b"older build"}
