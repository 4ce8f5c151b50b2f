"""Alerts topic -> Redis and signed webhooks, against a real broker, Redis and HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from driftline.local_infra import LocalRedis
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert, DeadLetter, SignalState, StreamState
from schemas.wire import decode_as, encode
from sinks.redis_state import (
    RedisStateWriter,
    acknowledge,
    list_streams,
    read_alert,
    read_stream,
    set_disabled,
    snooze,
)
from sinks.runner import RunningSinks, start_sinks
from sinks.webhook import InvalidSignature, verify
from sinks.webhook_receiver import WebhookReceiver
from tests.integration.processes import spawn, terminate

pytestmark = pytest.mark.integration

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw=="
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Tansu completes a first group join after half the session timeout.
FAST_JOIN = {"session.timeout.ms": 6000}


def alert(stream: str, n: int, signal: str = "confidence", **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": f"{stream}:v1:{signal}:adwin:{n}",
        "stream_id": stream,
        "model_version": "v1",
        "signal": signal,
        "detector": "adwin",
        "message": f"{signal} drifted",
        "statistic": 0.3 + n,
        "threshold": 0.2,
        "expected": 0.9,
        "observed": 0.6,
        "detected_index": 100 + n,
        "change_index": 90 + n,
        "detected_event_id": f"e{100 + n}",
        "ts": T0 + timedelta(seconds=n),
    }
    fields.update(kw)
    return Alert(**fields)


@pytest.fixture
def receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make(script: list[int] | None = None, default: int = 200) -> WebhookReceiver:
        made.append(WebhookReceiver(script=script, default=default, retry_after="0"))
        return made[-1]

    yield make
    for r in made:
        r.close()


def with_webhook(settings: Settings, url: str, **kw: Any) -> Settings:
    values = {
        "bootstrap_servers": settings.bootstrap_servers,
        "redis_url": settings.redis_url,
        "topic_prefix": settings.topic_prefix,
        "partitions": settings.partitions,
        "consumer_group": settings.consumer_group,
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_max_attempts": 3,
        "webhook_timeout_s": 2.0,
    }
    values.update(kw)
    return Settings(**values)


@pytest.fixture
def sinks() -> Iterator[Callable[[Settings], RunningSinks]]:
    started: list[RunningSinks] = []

    def start(s: Settings) -> RunningSinks:
        started.append(start_sinks(s, threading.Event(), webhook_base_delay_s=0.01,
                                   webhook_max_delay_s=0.05, consumer_conf=FAST_JOIN))
        return started[-1]

    yield start
    for r in started:
        r.stop.set()
        r.join(30)
        assert not r.errors, r.errors


def wait_for(cond: Callable[[], Any], timeout_s: float = 45.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or cond}")


def publish(settings: Settings, *items: Alert | StreamState | bytes) -> None:
    with Publisher.from_settings(settings) as p:
        for it in items:
            if isinstance(it, bytes):
                p.publish_raw(settings.topics.alerts, b"cam-bad", it)
            else:
                topic = settings.topics.alerts if isinstance(it, Alert) else settings.topics.state
                p.publish(topic, it)


def committed(settings: Settings, group: str, topic: str) -> int:
    """Total committed offsets of ``group`` over the topic's partitions."""
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def test_alerts_reach_redis_and_a_signed_webhook(
    settings: Settings, receiver: Callable[..., WebhookReceiver], sinks: Callable, topic_prefix: str
) -> None:
    rx = receiver()
    s = with_webhook(settings, rx.url)
    stream = f"{topic_prefix}-cam"
    a1, a2 = alert(stream, 1), alert(stream, 2, signal="brightness")
    # a1 twice: a redelivery (same id) must be stored once, and POSTed once.
    publish(s, a1, a2, a1)
    running = sinks(s)

    wait_for(lambda: len(rx.accepted()) >= 2, what="2 webhook deliveries")
    wait_for(lambda: committed(s, f"{s.consumer_group}.webhook", s.topics.alerts) == 3,
             what="webhook sink commits")
    wait_for(lambda: len(read_stream(s.redis_url, stream,
            namespace=topic_prefix)["recent_alerts"]) >= 2, what="redis")
    wait_for(lambda: committed(s, f"{s.consumer_group}.redis", s.topics.alerts) == 3,
             what="redis sink commits")

    # Redis: each alert once, history newest first, signal state, stream known.
    state = read_stream(s.redis_url, stream, namespace=topic_prefix)
    assert [a["alert_id"] for a in state["recent_alerts"]] == [a2.alert_id, a1.alert_id]
    assert read_alert(s.redis_url, a1.alert_id, namespace=topic_prefix) == json.loads(encode(a1))
    assert stream in list_streams(s.redis_url, namespace=topic_prefix)
    sigs = {x["signal"]: x for x in state["signals"]}
    assert sigs["confidence"]["status"] == "drift"
    assert sigs["confidence"]["last_alert_id"] == a1.alert_id
    assert sigs["brightness"]["statistic"] == pytest.approx(2.3)
    assert running.stats["redis"].handled == 3

    # Webhook: signed, verifiable, tamper-evident; a redelivered alert is not POSTed
    # again (sinks/webhook_ledger.py).
    deliveries = rx.accepted()
    ids = [d.webhook_id for d in deliveries]
    assert sorted(ids) == sorted([a1.alert_id, a2.alert_id])
    for d in deliveries:
        assert verify(SECRET, d.headers, d.body)
        assert decode_as(Alert, d.body).alert_id == d.webhook_id
        with pytest.raises(InvalidSignature):
            verify(SECRET, d.headers, d.body.replace(b"drifted", b"is fine"))


def test_state_snapshots_update_signal_state_and_never_go_back(
    settings: Settings, sinks: Callable, topic_prefix: str
) -> None:
    stream = f"{topic_prefix}-cam"

    def snap(seconds: int, status: str, stat: float) -> StreamState:
        return StreamState(
            stream_id=stream, model_version="v1", events_seen=seconds,
            ts=T0 + timedelta(seconds=seconds),
            signals={"entropy": SignalState(signal="entropy", status=status,  # type: ignore[arg-type]
                                            detector="page_hinkley", statistic=stat,
                                            threshold=5.0)},
        )

    # The newer snapshot first, then an older one (a redelivery after a crash).
    publish(settings, snap(20, "ok", 1.5))
    sinks(settings)
    wait_for(lambda: read_stream(settings.redis_url, stream,
            namespace=topic_prefix)["signals"], what="state in redis")
    publish(settings, snap(10, "warming_up", 0.1))
    wait_for(lambda: committed(settings, f"{settings.consumer_group}.redis",
                               settings.topics.state) == 2, what="state commits")
    [sig] = read_stream(settings.redis_url, stream, namespace=topic_prefix)["signals"]
    assert (sig["status"], sig["statistic"], sig["detector"]) == ("ok", 1.5, "page_hinkley")
    assert sig["updated_ts"] == (T0 + timedelta(seconds=20)).timestamp()


def test_webhook_retries_503_then_delivers(
    settings: Settings, receiver: Callable[..., WebhookReceiver], sinks: Callable, topic_prefix: str
) -> None:
    rx = receiver(script=[503, 503])
    s = with_webhook(settings, rx.url)
    a = alert(f"{topic_prefix}-cam", 1)
    publish(s, a)
    running = sinks(s)
    wait_for(rx.accepted, what="delivery after retries")
    assert [d.status for d in rx.requests] == [503, 503, 200]
    assert {d.webhook_id for d in rx.requests} == {a.alert_id}
    wait_for(lambda: committed(s, f"{s.consumer_group}.webhook", s.topics.alerts) == 1,
             what="webhook commit")
    assert running.stats["webhook"].dead_lettered == 0


def test_undeliverable_webhook_goes_to_dead_letter_and_the_sink_goes_on(
    settings: Settings,
    receiver: Callable[..., WebhookReceiver],
    sinks: Callable,
    read_topic: Callable,
    topic_prefix: str,
) -> None:
    rx = receiver(default=500)
    s = with_webhook(settings, rx.url)
    stream = f"{topic_prefix}-cam"
    a1, a2 = alert(stream, 1), alert(stream, 2)
    publish(s, a1, a2)
    running = sinks(s)

    letters = [decode_as(DeadLetter, r.value) for r in read_topic(s.topics.dead_letter, 2, 60)]
    assert len(letters) == 2
    by_id = {json.loads(d.original)["alert_id"]: d for d in letters}
    assert set(by_id) == {a1.alert_id, a2.alert_id}
    d = by_id[a1.alert_id]
    assert d.reason == "webhook_undeliverable" and "HTTP 500" in d.detail
    assert d.original == encode(a1) and d.key == stream.encode()
    assert d.source_topic == s.topics.alerts and d.source_offset is not None
    assert d.stage == "webhook"
    assert len(rx.requests) == 6  # 3 attempts each, nothing more
    # The webhook sink committed past both and the Redis sink still stored them.
    wait_for(lambda: committed(s, f"{s.consumer_group}.webhook", s.topics.alerts) == 2,
             what="webhook commits")
    assert running.stats["webhook"].dead_letter_reasons == {"webhook_undeliverable": 2}
    wait_for(lambda: read_alert(s.redis_url, a2.alert_id, namespace=topic_prefix), what="redis")


def test_undecodable_alert_goes_to_dead_letter(
    settings: Settings, sinks: Callable, read_topic: Callable, topic_prefix: str
) -> None:
    good = alert(f"{topic_prefix}-cam", 1)
    publish(settings, b'{"kind": "alert", "alert_id": ', good)
    running = sinks(settings)
    [rec] = read_topic(settings.topics.dead_letter, 1, 60)
    letter = decode_as(DeadLetter, rec.value)
    assert letter.reason == "invalid_json" and letter.original == b'{"kind": "alert", "alert_id": '
    assert letter.key == b"cam-bad" and letter.stage == "redis"
    wait_for(lambda: read_alert(settings.redis_url, good.alert_id,
            namespace=topic_prefix), what="good alert stored")
    wait_for(lambda: committed(settings, f"{settings.consumer_group}.redis",
                               settings.topics.alerts) == 2, what="commits")
    assert running.stats["redis"].dead_lettered == 1


def test_muted_streams_get_no_webhook_but_are_stored(
    settings: Settings, receiver: Callable[..., WebhookReceiver], sinks: Callable, topic_prefix: str
) -> None:
    rx = receiver()
    s = with_webhook(settings, rx.url)
    quiet, snoozed, loud = (f"{topic_prefix}-{n}" for n in ("quiet", "snoozed", "loud"))
    set_disabled(s.redis_url, quiet, namespace=topic_prefix)
    snooze(s.redis_url, snoozed, 600, namespace=topic_prefix)
    acknowledge(s.redis_url, loud, "confidence", alert_id="x", by="ops",
                namespace=topic_prefix)
    publish(s, alert(quiet, 1), alert(snoozed, 1), alert(loud, 1))
    sinks(s)
    wait_for(lambda: committed(s, f"{s.consumer_group}.webhook", s.topics.alerts) == 3,
             what="webhook commits")
    assert [d.webhook_id for d in rx.accepted()] == [alert(loud, 1).alert_id]
    wait_for(lambda: read_alert(s.redis_url, alert(quiet, 1).alert_id,
            namespace=topic_prefix), what="stored")
    view = read_stream(s.redis_url, snoozed, namespace=topic_prefix)
    assert view["snooze_until"] and not view["disabled"]
    assert read_stream(s.redis_url, quiet, namespace=topic_prefix)["disabled"]
    assert read_stream(s.redis_url, loud,
            namespace=topic_prefix)["signals"][0]["ack"]["by"] == "ops"


def test_redis_down_then_back_loses_nothing(
    settings: Settings, sinks: Callable, tmp_path: Any, topic_prefix: str
) -> None:
    # A private Redis: stopping the session one would disturb other tests.
    with LocalRedis(log_dir=tmp_path) as r:
        s = Settings(
            bootstrap_servers=settings.bootstrap_servers, redis_url=r.url,
            topic_prefix=settings.topic_prefix, partitions=2,
            consumer_group=settings.consumer_group,
        )
        stream = f"{topic_prefix}-cam"
        first, second = alert(stream, 1), alert(stream, 2)
        publish(s, first)
        running = sinks(s)
        wait_for(lambda: read_alert(r.url, first.alert_id,
                namespace=topic_prefix), what="first alert")

        r.stop()
        publish(s, second)
        # The sink keeps retrying the same message (no commit, no skip).
        wait_for(lambda: running.stats["redis"].retried >= 2, what="retries while down")
        assert committed(s, f"{s.consumer_group}.redis", s.topics.alerts) == 1
        r.start()
        wait_for(lambda: read_alert(r.url, second.alert_id,
                namespace=topic_prefix), what="second alert after restart")
        wait_for(lambda: committed(s, f"{s.consumer_group}.redis", s.topics.alerts) == 2,
                 what="commit after the effect")
        assert running.stats["redis"].dead_lettered == 0


def test_writer_is_idempotent_directly(redis_url: str, topic_prefix: str) -> None:
    w = RedisStateWriter(redis_url, history=5)
    stream = f"{topic_prefix}-cam"
    assert w.write_alert(alert(stream, 1)) is True
    assert w.write_alert(alert(stream, 1)) is False
    for n in range(2, 251):
        w.write_alert(alert(stream, n))
    hist = w.client.xlen(f"driftline:stream:{stream}:alerts")
    # MAXLEN ~ trims whole stream nodes (100 entries each): capped, approximately.
    assert 5 <= hist < 250
    recent = read_stream(redis_url, stream, recent=3)["recent_alerts"]
    assert [a["detected_index"] for a in recent] == [350, 349, 348]
    w.close()


def test_sinks_process_serves_metrics_of_what_it_did(
    settings: Settings, receiver: Callable[..., WebhookReceiver], topic_prefix: str, tmp_path: Any
) -> None:
    """`driftline sinks` with DRIFTLINE_METRICS_PORT: /metrics over real HTTP counts the work."""

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from driftline.local_infra import free_port, settings_env

    rx = receiver()
    port = free_port()
    s = with_webhook(settings, rx.url, metrics_port=port)
    good = alert(f"{topic_prefix}-cam", 1)
    publish(s, good, b'{"kind": "alert", ')  # an alert, and bytes that go to dead letters

    def sample(name: str, **labels: str) -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.ConnectError:  # the process is still starting
            return -1.0
        for family in text_string_to_metric_families(text):
            for smp in family.samples:
                if smp.name == name and smp.labels == labels:
                    return smp.value
        return 0.0

    t = s.topics
    proc = spawn(["sinks"], settings_env(s), tmp_path / "sinks.log")
    try:
        # Both sinks (redis, webhook) read both messages; each dead-letters the bad one.
        wait_for(lambda: proc.poll() is None and sample(
            "driftline_sink_messages_total", sink="webhook", outcome="dead_lettered") == 1
            and sample("driftline_sink_messages_total", sink="redis", outcome="dead_lettered")
            == 1 and sample("driftline_redis_writes_total", kind="alert", outcome="written") == 1
            and sample("driftline_webhook_deliveries_total", outcome="delivered") == 1,
            what="metrics of both sinks' work")
        assert sample("driftline_events_in_total", topic=t.alerts) == 4
        assert sample("driftline_events_out_total", topic=t.dead_letter) == 2
        for stage in ("redis", "webhook"):
            assert sample("driftline_dead_letters_total", stage=stage, reason="invalid_json") == 1
            assert sample("driftline_sink_messages_total", sink=stage, outcome="handled") == 1
            assert sample("driftline_processing_seconds_count", stage=stage) == 2
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert (health.status_code, health.text) == (200, "ok\n")
        assert [d.webhook_id for d in rx.accepted()] == [good.alert_id]
        assert read_alert(s.redis_url, good.alert_id, namespace=topic_prefix)
    finally:
        code = terminate(proc, timeout_s=30)
    assert code == [0], (tmp_path / "sinks.log").read_text()[-2000:]
