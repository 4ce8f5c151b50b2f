"""The chart series the sinks keep per signal (``sinks/redis_series.py``), on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from schemas.events import SignalState, StreamState
from sinks.redis_series import RedisSeriesWriter, read_series, series_key

pytestmark = [pytest.mark.integration]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _state(events: int, seconds: float, statistic: float) -> StreamState:
    sig = SignalState(signal="s", status="ok", detector="cusum", statistic=statistic,
                      threshold=5.0, expected=1.0, observed=1.1)
    return StreamState(stream_id="cam:1", model_version="v1", events_seen=events,
                       signals={"s": sig}, ts=T0 + timedelta(seconds=seconds),
                       monitor={"signals": {"s": {"detector": {"mean": 1.0, "k": 0.5,
                                                               "scale": 0.2}}}})


def test_points_are_appended_once_in_order_and_capped(redis_url: str, topic_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    writer = RedisSeriesWriter(client, points=3, namespace=topic_prefix)
    try:
        assert writer.write(_state(10, 1, 0.1)) == 1
        assert writer.write(_state(10, 1, 0.1)) == 0      # redelivered: unchanged
        assert writer.write(_state(10, 2, 0.2)) == 1      # a command's snapshot: replaces
        assert writer.write(_state(5, 3, 9.9)) == 0       # older (a worker re-applying)
        for i, n in enumerate((20, 30, 40)):
            assert writer.write(_state(n, 4 + i, 0.3 + i)) == 1
        got = read_series(redis_url, "cam:1", "v1", ["s", "other"], namespace=topic_prefix)
        assert [p["index"] for p in got["s"]] == [19, 29, 39]  # capped at 3, oldest dropped
        assert got["other"] == []
        last = got["s"][-1]
        assert (last["baseline"], last["tolerance"], last["threshold"]) == (1.0, 0.1, 5.0)
        assert client.llen(series_key("cam:1", "v1", "s", topic_prefix)) == 3
        assert ":cam%3A1:" in series_key("cam:1", "v1", "s", topic_prefix)
        off = RedisSeriesWriter(client, points=0, namespace=topic_prefix)
        assert off.write(_state(50, 9, 1.0)) == 0
    finally:
        client.close()
