"""The publishing SDK against a real broker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from driftline.errors import DeliveryFailed, InvalidEvent
from driftline.local_infra import free_port
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Prediction
from schemas.wire import decode_as, encode

pytestmark = pytest.mark.integration


def prediction(stream: str, i: int) -> Prediction:
    return Prediction(
        stream_id=stream,
        model_version="v1",
        event_id=f"{stream}-{i}",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        top_class="tabby",
        confidence=0.5,
        frame_index=i,
    )


def test_round_trip_keyed_and_counted(settings: Settings, read_topic: Callable) -> None:
    reports: list[object] = []
    streams = ["cam-a", "cam-b", "cam-c", "cam-d"]
    topic = settings.topics.predictions
    with Publisher.from_settings(settings, on_delivery=lambda err, msg: reports.append(err)) as p:
        for i in range(50):
            for s in streams:
                p.publish(topic, prediction(s, i))
    assert p.produced == p.delivered == len(reports) == 200
    assert p.failed == 0 and all(err is None for err in reports)

    records = read_topic(topic, 200)
    assert len(records) == 200
    partitions: dict[bytes, set[int]] = defaultdict(set)
    per_stream: dict[str, list[int]] = defaultdict(list)
    for r in records:
        assert r.key is not None
        partitions[r.key].add(r.partition)
        ev = decode_as(Prediction, r.value)
        assert ev.stream_id.encode() == r.key
        per_stream[ev.stream_id].append(ev.frame_index or 0)
    # Key = stream: one stream, one partition, and in publish order.
    assert all(len(ps) == 1 for ps in partitions.values())
    assert all(order == list(range(50)) for order in per_stream.values())
    # Idempotent producer: no duplicates from internal retries.
    assert len({(r.partition, r.offset) for r in records}) == 200


def test_publish_raw_and_send_and_wait(settings: Settings, read_topic: Callable) -> None:
    topic = settings.topics.dead_letter
    with Publisher(settings.bootstrap_servers) as p:
        p.publish_raw(topic, None, b"not json at all")
        p.send_and_wait(topic, b"k", b"\x00\x01binary")
    got = sorted(r.value for r in read_topic(topic, 2))
    assert got == [b"\x00\x01binary", b"not json at all"]


def test_oversize_is_refused_before_sending(broker: str) -> None:
    p = Publisher(broker, max_event_bytes=1024)
    with pytest.raises(InvalidEvent) as err:
        p.publish_raw("whatever", None, b"x" * 2000)
    assert err.value.reason == "oversize"
    assert p.produced == 0
    p.flush(5)


def test_unreachable_broker_fails_loudly() -> None:
    # Nothing listens on this port: every message expires and flush says so.
    p = Publisher(f"127.0.0.1:{free_port()}", delivery_timeout_ms=1500)
    p.publish("t.predictions", prediction("cam-x", 0))
    with pytest.raises(DeliveryFailed, match="1 message"):
        p.flush(10)
    assert p.failed == 1 and p.delivered == 0 and p.errors
    p.flush(1)  # the failure was reported once; nothing new since


def test_encoded_bytes_are_the_wire_form(settings: Settings, read_topic: Callable) -> None:
    ev = prediction("cam-z", 7)
    with Publisher.from_settings(settings) as p:
        p.publish(settings.topics.predictions, ev)
    [rec] = read_topic(settings.topics.predictions, 1)
    assert rec.value == encode(ev) and rec.key == b"cam-z"


# -- the local infrastructure the publisher is tested against ---------------


def test_ensure_topics_is_idempotent_and_compacts_state(broker: str, topic_prefix: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from driftline.local_infra import ensure_topics
    from driftline.settings import Topics

    topics = Topics(prefix=topic_prefix)
    assert set(ensure_topics(broker, topics, 3).values()) == {"created"}
    assert set(ensure_topics(broker, topics, 3).values()) == {"exists"}
    admin = AdminClient({"bootstrap.servers": broker})
    md = admin.list_topics(timeout=10)
    assert all(len(md.topics[t].partitions) == 3 for t in topics.all())
    [fut] = admin.describe_configs([ConfigResource("topic", topics.state)]).values()
    assert fut.result()["cleanup.policy"].value == "compact"


def test_missing_redis_server_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from driftline.errors import ConfigError
    from driftline.local_infra import LocalRedis

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    with pytest.raises(ConfigError, match="apt-get install -y redis-server"):
        LocalRedis(log_dir=tmp_path).start()


def test_local_redis_restarts_on_the_same_url(tmp_path) -> None:
    import redis

    from driftline.local_infra import LocalRedis

    with LocalRedis(log_dir=tmp_path, appendonly=True) as r:
        url, pid = r.url, r.pid
        redis.Redis.from_url(url).set("k", "v")
        r.stop()
        assert not r.running
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        r.start()
        assert r.url == url and r.pid != pid
        assert redis.Redis.from_url(url).get("k") == b"v"  # appendonly survived
    assert not r.running
