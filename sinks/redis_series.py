"""A bounded time series per signal in Redis, for the operator page's charts.

The Redis sink writes the *current* state of every signal
(``sinks.redis_state``); a chart needs its recent past too. Each state
snapshot on the state topic adds one point per signal of its stream and
model version::

    {ns}:stream:{sid}:{mv}:series:{sig}   LIST  JSON points, oldest first,
                                                capped at ``points`` (LTRIM)

A point is a JSON array ``[index, ts_ms, statistic, threshold, observed,
expected, baseline, tolerance, status]`` (``POINT_FIELDS``): ``index`` is the
stream's event index of the snapshot (``events_seen - 1``, the unit of an
alert's ``change_index``/``detected_index``), ``baseline`` and ``tolerance``
the centre and half-width of the CUSUM's tolerance band in the signal's own
units (its baseline ``mean`` and allowance ``k * scale`` from the monitor
checkpoint the snapshot carries; ``null`` for other detectors), ``status``
``warming_up``/``ok``/``drift``.

Bounds: ``points`` per (stream, model version, signal), default 300
(``DRIFTLINE_API__SERIES_POINTS``; 0 = no series), ~90 bytes each: about
0.8 MB per stream with its ~30 signals at the default. At the worker's default
snapshot cadence (every 100 events or 5 s) 300 points span 30,000 events or
25 minutes, whichever is shorter.

Idempotent: a point is appended only if its ``index`` is above the last
one's; a snapshot of the same index (a command re-referenced the stream
without a new event) replaces the last point only if it is newer; an older
or redelivered snapshot changes nothing (one Lua script per snapshot).

Examples
--------
>>> series_key("cam-1", "v1", "quality.brightness", ns="demo")
'demo:stream:cam-1:v1:series:quality.brightness'
>>> from schemas.events import SignalState
>>> point(7, 1000, SignalState(signal="s", status="ok", detector="cusum", statistic=0.5,
...       threshold=4.0, expected=10.0, observed=10.5),
...       {"detector": {"mean": 10.2, "k": 0.5, "scale": 2.0}})
[7, 1000, 0.5, 4.0, 10.5, 10.0, 10.2, 1.0, 'ok']
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from schemas.events import SignalState, StreamState
from sinks.redis_state import (
    PREFIX,
    RedisStateWriter,
    _connection,
    _guard,
    _ts_ms,
    esc,
    stream_key,
)

POINT_FIELDS = ("index", "ts_ms", "statistic", "threshold", "observed", "expected",
                "baseline", "tolerance", "status")
"""The meaning of each position of a stored point."""

DEFAULT_POINTS = 300


def series_key(stream_id: str, model_version: str, signal: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:{esc(model_version)}:series:{esc(signal)}"


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def point(index: int, ts_ms: int, sig: SignalState, checkpoint: dict[str, Any] | None) -> list:
    """One chart point of ``sig``; ``checkpoint``: the signal's part of the monitor state."""
    det = (checkpoint or {}).get("detector") or {}
    baseline, k, scale = _finite(det.get("mean")), _finite(det.get("k")), _finite(det.get("scale"))
    tolerance = k * scale if k is not None and scale is not None and baseline is not None else None
    return [index, ts_ms, _finite(sig.statistic), _finite(sig.threshold), _finite(sig.observed),
            _finite(sig.expected), baseline, tolerance, sig.status]


# KEYS: one series list per signal. ARGV: cap, index, ts ms, then one point JSON per key.
_APPEND = """
local written = 0
local cap = tonumber(ARGV[1])
local index = tonumber(ARGV[2])
local ts = tonumber(ARGV[3])
for i = 1, #KEYS do
  local last = redis.call('LINDEX', KEYS[i], -1)
  local li, lts = -1, -1
  if last then
    local p = cjson.decode(last)
    li, lts = tonumber(p[1]), tonumber(p[2])
  end
  if index > li then
    redis.call('RPUSH', KEYS[i], ARGV[3 + i])
    redis.call('LTRIM', KEYS[i], -cap, -1)
    written = written + 1
  elseif index == li and ts > lts then
    redis.call('LSET', KEYS[i], -1, ARGV[3 + i])
    written = written + 1
  end
end
return written
"""


class RedisSeriesWriter:
    """Appends each snapshot's points (see the module docstring); shares a Redis client."""

    def __init__(self, client: Any, points: int = DEFAULT_POINTS, *,
                 namespace: str = PREFIX) -> None:
        self.client = client
        self.points = points
        self.ns = namespace
        self._append = client.register_script(_APPEND)

    def write(self, state: StreamState) -> int:
        """Add ``state``'s points; returns how many series changed."""
        if self.points <= 0 or not state.signals:
            return 0
        index, ts = max(0, state.events_seen - 1), int(_ts_ms(state.ts))
        checkpoints = (state.monitor or {}).get("signals") or {}
        keys: list[str] = []
        args: list[Any] = [self.points, index, ts]
        for name, sig in state.signals.items():
            keys.append(series_key(state.stream_id, state.model_version, name, self.ns))
            args.append(json.dumps(point(index, ts, sig, checkpoints.get(name))))
        return int(_guard("write_series", lambda: self._append(keys=keys, args=args)))


def with_series(writer: RedisStateWriter, points: int) -> Callable[[StreamState], None]:
    """``writer.write_state`` then the snapshot's chart points (the sinks runner's hook).

    Shares the writer's Redis client and namespace. Both writes are
    idempotent, so a snapshot retried after a transient Redis error in
    either changes nothing twice.
    """
    series = RedisSeriesWriter(writer.client, points, namespace=writer.ns)

    def handle(state: StreamState) -> None:
        writer.write_state(state)
        series.write(state)

    return handle


def read_series(redis_url: str, stream_id: str, model_version: str, signals: list[str], *,
                last: int | None = None, namespace: str = PREFIX) -> dict[str, list[dict]]:
    """The stored points of ``signals`` (oldest first), each a dict of ``POINT_FIELDS``."""
    start = -last if last else 0

    def read() -> dict[str, list[dict]]:
        with _connection(redis_url) as r:
            pipe = r.pipeline(transaction=False)
            for sig in signals:
                pipe.lrange(series_key(stream_id, model_version, sig, namespace), start, -1)
            raw = pipe.execute()
        return {sig: [dict(zip(POINT_FIELDS, json.loads(p), strict=True)) for p in pts]
                for sig, pts in zip(signals, raw, strict=True)}

    return _guard("read_series", read)
