"""Redis mirror of alert lifecycles and stream controls, and the fleet view.

The alert topic carries every alert's lifecycle (``Alert.lifecycle``:
``firing``, then ``acknowledged`` and/or ``resolved``, same ``alert_id``;
``processors/monitor/controls.py``); the state topic carries each stream's
controls (``StreamState.controls``). The Redis sink (``sinks.runner``) writes
both here. Keys (``{ns}``, ``{sid}``, ``{mv}`` as in ``sinks.redis_state``)::

    {ns}:alert:{alert_id}:lifecycle       HASH   state, stream_id, model_version,
                                                 signal, severity, notify, ts,
                                                 by, reason, event_id; expires
                                                 as the alert document does
    {ns}:stream:{sid}:lifecycle           HASH   alert_id -> state (the stream's
                                                 alerts; the fleet's "open"); past
                                                 ``index_cap`` entries its
                                                 resolved ones are dropped
    {ns}:stream:{sid}:{mv}:controls       STRING JSON {controls, last_event_ts, ts}

A lifecycle only moves forward (firing < acknowledged < resolved; one Lua
script compares), so a redelivered or late event never moves an alert back:
the Redis state after any at-least-once delivery equals ``mirror`` of the
topic (past the stream index's cap, less its oldest resolved alerts). A controls
document is replaced only by a snapshot at least as new.
An ``acknowledged`` event also sets the signal's ``ack`` document
(``sinks.redis_state.ack_key``) that ``driftline state`` shows.

Examples
--------
>>> from schemas.events import Alert
>>> a = Alert(alert_id="a1", stream_id="cam", model_version="v1", signal="s",
...           detector="cusum", message="m", statistic=1.0, detected_index=3,
...           change_index=1, detected_event_id="e3")
>>> mirror([a, a.model_copy(update={"lifecycle": "resolved"}), a])
{'a1': 'resolved'}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from schemas.events import Alert, StreamState
from sinks.redis_camera import camera_of, is_camera
from sinks.redis_state import (
    DEFAULT_ALERT_TTL_S,
    PREFIX,
    _client,
    _connection,
    _guard,
    _ts_ms,
    ack_key,
    alert_key,
    esc,
    list_streams,
    read_stream,
    stream_key,
)

RANK = {"firing": 0, "acknowledged": 1, "resolved": 2}
HISTORY_SHOWN = 10  # controls of a stream ``in_force`` lists (newest last)


def lifecycle_key(alert_id: str, ns: str = PREFIX) -> str:
    return f"{alert_key(alert_id, ns)}:lifecycle"


def stream_lifecycles_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:lifecycle"


def controls_key(stream_id: str, model_version: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:{esc(model_version)}:controls"


def mirror(alerts: Iterable[Alert]) -> dict[str, str]:
    """Each alert's current lifecycle state from the alert topic's events alone."""
    out: dict[str, str] = {}
    for a in alerts:
        if RANK[a.lifecycle] >= RANK.get(out.get(a.alert_id, "firing"), 0):
            out[a.alert_id] = a.lifecycle
    return out


# KEYS: lifecycle hash, stream index, ack key (written only with an ack doc)
# ARGV: rank, state, alert id, ttl s (0: none), index cap, then field/value pairs for
#       the hash; last: ack doc or ''
_WRITE = """
local ranks = {firing = 0, acknowledged = 1, resolved = 2}
local cur = redis.call('HGET', KEYS[1], 'state')
if cur and ranks[cur] >= tonumber(ARGV[1]) then return 0 end
local fields = {}
for i = 6, #ARGV - 1 do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(fields))
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[2])
if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[5]) then
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if all[i + 1] == 'resolved' then redis.call('HDEL', KEYS[2], all[i]) end
  end
end
if ARGV[#ARGV] ~= '' then redis.call('SET', KEYS[3], ARGV[#ARGV]) end
return 1
"""

# KEYS: controls key; ARGV: document, ts ms
_WRITE_CONTROLS = """
local prev = redis.call('GET', KEYS[1])
if prev then
  local old = cjson.decode(prev)
  if tonumber(old['ts']) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class LifecycleWriter:
    """Writes lifecycle events and stream controls to Redis, idempotently (module docstring)."""

    def __init__(self, redis_url: str, *, namespace: str = PREFIX,
                 alert_ttl_s: int | None = DEFAULT_ALERT_TTL_S, index_cap: int = 1000) -> None:
        self.ns = namespace
        self.alert_ttl_s = alert_ttl_s
        self.index_cap = index_cap
        self.client = _client(redis_url)
        self._write = self.client.register_script(_WRITE)
        self._write_controls = self.client.register_script(_WRITE_CONTROLS)

    def write_alert(self, alert: Alert) -> bool:
        """Move ``alert``'s lifecycle forward; ``True`` if it moved."""
        ns = self.ns
        ack = ""
        if alert.lifecycle == "acknowledged":
            ack = json.dumps({"alert_id": alert.alert_id, "by": alert.lifecycle_by or "",
                              "ts": alert.ts.timestamp(), "reason": alert.lifecycle_reason,
                              "command_id": alert.lifecycle_event_id})
        fields = {
            "stream_id": alert.stream_id, "model_version": alert.model_version,
            "signal": alert.signal, "severity": alert.severity,
            "notify": "1" if alert.notify else "0", "ts": _ts_ms(alert.ts),
            "by": alert.lifecycle_by or "", "reason": alert.lifecycle_reason or "",
            "event_id": alert.lifecycle_event_id or alert.detected_event_id,
        }
        args: list[Any] = [RANK[alert.lifecycle], alert.lifecycle, alert.alert_id,
                           self.alert_ttl_s or 0, self.index_cap]
        for k, v in fields.items():
            args += [k, v]
        args.append(ack)
        keys = [lifecycle_key(alert.alert_id, ns), stream_lifecycles_key(alert.stream_id, ns),
                ack_key(alert.stream_id, alert.signal, ns)]
        return bool(_guard("write_lifecycle", lambda: self._write(keys=keys, args=args)))

    def write_controls(self, state: StreamState) -> bool:
        """Store the stream's controls and last event time unless a newer snapshot is there."""
        doc = json.dumps({
            "controls": state.controls.model_dump(mode="json"),
            "last_event_ts": state.last_event_ts.isoformat() if state.last_event_ts else None,
            "ts": _ts_ms(state.ts),
        })
        key = controls_key(state.stream_id, state.model_version, self.ns)
        return bool(_guard("write_controls", lambda: self._write_controls(
            keys=[key], args=[doc, _ts_ms(state.ts)])))

    def close(self) -> None:
        self.client.close()


def read_lifecycles(redis_url: str, stream_id: str, *, namespace: str = PREFIX) -> dict[str, str]:
    """alert id -> current lifecycle state, for every alert of ``stream_id`` Redis holds."""

    def read() -> dict[str, str]:
        with _connection(redis_url) as r:
            return dict(r.hgetall(stream_lifecycles_key(stream_id, namespace)))

    return _guard("read_lifecycles", read)


def read_alert_lifecycle(redis_url: str, alert_id: str, *, namespace: str = PREFIX
                         ) -> dict[str, str] | None:
    """One alert's lifecycle hash (``state``, ``by``, ``reason``, ``ts`` ms...), or ``None``."""

    def read() -> dict[str, str] | None:
        with _connection(redis_url) as r:
            return dict(r.hgetall(lifecycle_key(alert_id, namespace))) or None

    return _guard("read_alert_lifecycle", read)


def in_force(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The controls in force on a stream, over its model versions' controls documents.

    ``snoozed``: signal -> ``until`` (ISO) of each snooze still running at
    its version's last event (event time, as the worker judges it; the
    latest ``until`` over versions); ``disabled``: the disabled signals;
    ``last_event_ts``: the latest event time (ISO) or ``None``; ``history``:
    the latest ``HISTORY_SHOWN`` controls (``ControlRecord`` documents),
    oldest first.

    >>> rec = {"command_id": "c1", "action": "snooze", "signals": ["s"], "by": "ana",
    ...        "reason": "", "ts": "2026-01-01T00:00:00+00:00",
    ...        "until": "2026-01-01T02:00:00+00:00"}
    >>> doc = {"controls": {"snoozed": {"s": rec}, "disabled": {"t": rec}, "budget": None,
    ...                     "history": [rec]}, "last_event_ts": "2026-01-01T01:00:00+00:00"}
    >>> got = in_force([doc])
    >>> got["snoozed"], got["disabled"], len(got["history"])
    ({'s': '2026-01-01T02:00:00+00:00'}, ['t'], 1)
    >>> in_force([{**doc, "last_event_ts": "2026-01-01T03:00:00+00:00"}])["snoozed"]
    {}
    """
    snoozed: dict[str, str] = {}
    disabled: set[str] = set()
    history: list[dict[str, Any]] = []
    last: list[str] = []
    for d in docs:
        c, seen = d["controls"], d.get("last_event_ts")
        now = datetime.fromisoformat(seen) if seen else None
        for sig, rec in c["snoozed"].items():
            until = rec.get("until")
            if until and (now is None or datetime.fromisoformat(until) > now) and \
                    until > snoozed.get(sig, ""):
                snoozed[sig] = until
        disabled.update(c["disabled"])
        history += c.get("history", [])
        if seen:
            last.append(seen)
    history.sort(key=lambda r: datetime.fromisoformat(r["ts"]))
    return {"snoozed": dict(sorted(snoozed.items())), "disabled": sorted(disabled),
            "last_event_ts": max(last, key=datetime.fromisoformat) if last else None,
            "history": history[-HISTORY_SHOWN:]}


def read_controls(redis_url: str, stream_id: str, model_versions: Iterable[str], *,
                  namespace: str = PREFIX) -> dict[str, dict[str, Any]]:
    """model version -> its controls document (``write_controls``), where one is stored."""

    def read() -> dict[str, dict[str, Any]]:
        versions = list(model_versions)
        with _connection(redis_url) as r:
            docs = r.mget([controls_key(stream_id, mv, namespace) for mv in versions]) \
                if versions else []
        return {mv: json.loads(d) for mv, d in zip(versions, docs, strict=True) if d}

    return _guard("read_controls", read)


def open_count(lifecycles: dict[str, str]) -> int:
    """Alerts firing or acknowledged, not resolved (``read_lifecycles``' values)."""
    return sum(1 for v in lifecycles.values() if v != "resolved")


def fleet(redis_url: str, *, namespace: str = PREFIX) -> list[dict[str, Any]]:
    """One row per stream (``driftline streams``): status, last event, drift, controls.

    ``status``: ``drift`` if any signal is in drift, else ``warming_up`` if
    any is, else ``ok`` (``unknown`` before any state); ``open_alerts``:
    alerts firing or acknowledged, not yet resolved; ``snoozed`` and
    ``disabled``: the controls ``in_force``; ``camera``: its camera's state
    (``sinks.redis_camera.camera_of``; null before any camera alert).
    """
    rows = []
    for sid in list_streams(redis_url, namespace=namespace):
        view = read_stream(redis_url, sid, recent=1, namespace=namespace)
        statuses = {s["status"] for s in view["signals"] if not is_camera(s["signal"])}
        status = next((s for s in ("drift", "warming_up", "ok") if s in statuses), "unknown")
        versions = sorted({s["model_version"] for s in view["signals"]})
        controls = read_controls(redis_url, sid, versions, namespace=namespace)
        lifecycles = read_lifecycles(redis_url, sid, namespace=namespace)
        now = in_force(controls.values())
        rows.append({
            "stream_id": sid,
            "status": status,
            "last_event_ts": now["last_event_ts"],
            "drift": sorted({s["signal"] for s in view["signals"] if s["status"] == "drift"}),
            "open_alerts": open_count(lifecycles),
            "snoozed": now["snoozed"],
            "disabled": now["disabled"],
            "model_versions": versions,
            "camera": camera_of(view["signals"]),
        })
    return rows

