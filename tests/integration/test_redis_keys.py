"""Redis keys on a real Redis: escaped ids (no collisions) under each deployment's prefix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from schemas.events import Alert, SignalState, StreamState
from sinks.redis_state import RedisStateWriter, esc, list_streams, read_alert, read_stream

pytestmark = [pytest.mark.integration]


def _alert(stream: str, version: str, n: int, statistic: float) -> Alert:
    return Alert(alert_id=f"{stream}:{version}:confidence:cusum:{n}", stream_id=stream,
                 model_version=version, signal="confidence", detector="cusum", message="m",
                 statistic=statistic, detected_index=n, change_index=n,
                 detected_event_id=f"e{n}", ts=datetime(2026, 1, 1, tzinfo=UTC))


def test_ids_with_colons_do_not_collide(redis_url: str, topic_prefix: str):
    w = RedisStateWriter(redis_url, namespace=topic_prefix)
    # stream "a" + version "b:c" and stream "a:b" + version "c": one key before escaping.
    a = _alert(f"{topic_prefix}-a", "b:c", 1, 1.0)
    b = _alert(f"{topic_prefix}-a:b", "c", 2, 2.0)  # (its alert id differs too)
    assert w.write_alert(a) and w.write_alert(b)
    sa = read_stream(redis_url, a.stream_id, namespace=topic_prefix)
    sb = read_stream(redis_url, b.stream_id, namespace=topic_prefix)
    assert [(s["model_version"], s["statistic"]) for s in sa["signals"]] == [("b:c", 1.0)]
    assert [(s["model_version"], s["statistic"]) for s in sb["signals"]] == [("c", 2.0)]
    assert [x["alert_id"] for x in sa["recent_alerts"]] == [a.alert_id]
    assert [x["alert_id"] for x in sb["recent_alerts"]] == [b.alert_id]
    w.close()


def test_two_deployments_share_a_redis_without_mixing(redis_url: str, topic_prefix: str):
    ns1, ns2 = f"{topic_prefix}-one", f"{topic_prefix}-two"
    w1 = RedisStateWriter(redis_url, namespace=ns1)
    w2 = RedisStateWriter(redis_url, namespace=ns2)
    stream = "cam-1"
    assert w1.write_alert(_alert(stream, "v1", 1, 1.0))
    # The same alert id in the other deployment is new there, not a duplicate.
    assert w2.write_alert(_alert(stream, "v1", 1, 5.0))
    w2.write_state(StreamState(stream_id=stream, model_version="v1", events_seen=3,
                               ts=datetime(2026, 1, 2, tzinfo=UTC),
                               signals={"confidence": SignalState(
                                   signal="confidence", status="ok", detector="cusum")}))
    assert read_alert(redis_url, f"{stream}:v1:confidence:cusum:1", namespace=ns1)[
        "statistic"] == 1.0
    assert read_stream(redis_url, stream, namespace=ns1)["signals"][0]["status"] == "drift"
    assert read_stream(redis_url, stream, namespace=ns2)["signals"][0]["status"] == "ok"
    assert list_streams(redis_url, namespace=ns1) == [stream]
    # Every key either deployment wrote is under its prefix.
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for ns in (ns1, ns2):
        keys = list(r.scan_iter(match=f"{ns}:*"))
        assert keys and all(k.startswith(f"{ns}:") for k in keys)
        assert all(k.count(":") == k.replace("%3A", "").count(":") for k in keys)
    r.close()
    w1.close()
    w2.close()


def test_escaping_is_reversible_and_leaves_plain_ids_alone():
    from urllib.parse import unquote

    for raw in ("cam-1", "a:b", "50%", "{x}", "sp ace", "tab\there", "ünï", "a%3Ab"):
        assert unquote(esc(raw)) == raw
    assert esc("a%3Ab") != esc("a:b")
    assert esc("cam-1.v2@site/x") == "cam-1.v2@site/x"
