"""What the operator's API costs: Redis memory of the chart series, and response times.

A local ``redis-server`` holds STREAMS streams of 26 signals, each with a full
series (``DRIFTLINE_API__SERIES_POINTS``, 300 points, written as the sinks
write them); the API (uvicorn, real HTTP) answers the fleet, one stream's
charts and the timeline. Run from the repository root::

    python bench/bench_api.py [STREAMS]
"""

from __future__ import annotations

import sys
import time

import httpx
import redis

from driftline.api import ApiServer
from driftline.local_infra import LocalRedis
from driftline.settings import Settings
from schemas.events import SignalState, StreamState
from sinks.redis_series import RedisSeriesWriter
from sinks.redis_state import RedisStateWriter

SIGNALS = [f"sig.{i}" for i in range(26)]
POINTS = 300


def main(streams: int = 100) -> None:
    with LocalRedis() as server:
        writer = RedisStateWriter(server.url)
        series = RedisSeriesWriter(writer.client, POINTS)
        for k in range(streams):
            for n in range(1, POINTS + 1):
                st = StreamState(
                    stream_id=f"cam-{k}", model_version="v1", events_seen=n * 100,
                    signals={s: SignalState(signal=s, status="ok", detector="cusum",
                                            statistic=0.123456, threshold=5.4321,
                                            expected=101.2345, observed=100.9876)
                             for s in SIGNALS})
                series.write(st)
            writer.write_state(st)
        used = redis.Redis.from_url(server.url).info("memory")["used_memory"]
        print(f"# {streams} streams x {len(SIGNALS)} signals x {POINTS} points: Redis "
              f"{used / 1e6:.1f} MB ({used / streams / 1e6:.2f} MB per stream, "
              f"{used / (streams * len(SIGNALS) * POINTS):.0f} bytes per point)")
        print("| route | mean ms (5 requests) | bytes |\n|---|---:|---:|")
        with ApiServer(Settings(redis_url=server.url), port=0) as api, \
                httpx.Client(base_url=api.url, timeout=60) as http:
            for path in ("/api/v1/streams", "/api/v1/streams/cam-1", "/api/v1/alerts"):
                http.get(path)
                t = time.perf_counter()
                for _ in range(5):
                    res = http.get(path)
                print(f"| `{path}` | {(time.perf_counter() - t) / 5 * 1000:.0f} | "
                      f"{len(res.content)} |")
        writer.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
