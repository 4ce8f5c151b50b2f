"""The Redis lifecycle mirror against a real Redis: only forward, and what the topic says."""

from __future__ import annotations

import pytest

from schemas.events import Alert
from sinks.alert_lifecycle import LifecycleWriter, mirror, read_lifecycles
from sinks.redis_state import _client, ack_key

pytestmark = [pytest.mark.integration]


def _alert(aid: str, lifecycle: str = "firing", **kw) -> Alert:
    return Alert(alert_id=aid, stream_id="cam", model_version="v1", signal="output.confidence",
                 detector="cusum", message="m", statistic=1.0, detected_index=3,
                 change_index=1, detected_event_id="e3", lifecycle=lifecycle, **kw)


def test_a_lifecycle_only_moves_forward_and_equals_the_topics_mirror(redis_url, topic_prefix):
    w = LifecycleWriter(redis_url, namespace=topic_prefix)
    try:
        ack = _alert("a1", "acknowledged", lifecycle_by="ops", lifecycle_reason="known",
                     lifecycle_event_id="c1")
        events = [_alert("a1"), _alert("a2"), ack, _alert("a1", "resolved")]
        assert [w.write_alert(a) for a in events] == [True, True, True, True]
        # Redelivered and late events change nothing.
        assert [w.write_alert(a) for a in (_alert("a1"), ack, events[-1])] == [False] * 3
        got = read_lifecycles(redis_url, "cam", namespace=topic_prefix)
        assert got == mirror(events) == {"a1": "resolved", "a2": "firing"}
        r = _client(redis_url)
        assert '"by": "ops"' in r.get(ack_key("cam", "output.confidence", topic_prefix))
        r.close()
    finally:
        w.close()


def test_the_stream_index_drops_resolved_alerts_past_its_cap(redis_url, topic_prefix):
    w = LifecycleWriter(redis_url, namespace=topic_prefix, index_cap=3)
    try:
        for i in range(3):
            w.write_alert(_alert(f"r{i}"))
            w.write_alert(_alert(f"r{i}", "resolved"))
        w.write_alert(_alert("open"))
        assert read_lifecycles(redis_url, "cam", namespace=topic_prefix) == {"open": "firing"}
    finally:
        w.close()
