"""Redis holds what people and dashboards query: alerts, current state, operator flags.

Redis is not the source of truth for detector state (the compacted state
topic is); everything here can be rebuilt by replaying the alerts and state
topics, and every write is idempotent, so at-least-once delivery from Kafka
never shows an alert twice.

Key layout (``{ns}`` = the deployment's namespace, its ``DRIFTLINE_TOPIC_PREFIX``;
``{sid}`` = stream id, ``{mv}`` = model version; every id is escaped, see below)::

    {ns}:streams                          SET    every stream id seen
    {ns}:alert:{alert_id}                 STRING alert JSON (wire form); SET NX,
                                                 expires after ``alert_ttl_s``
    {ns}:stream:{sid}:alerts              STREAM recent alert ids, newest last,
                                                 capped (XADD MAXLEN ~ history);
                                                 fields alert_id, signal,
                                                 model_version, severity, ts
    {ns}:stream:{sid}:signals             SET    JSON ["{mv}", "{signal}"] pairs
    {ns}:stream:{sid}:{mv}:signal:{sig}   HASH   status, detector, statistic,
                                                 threshold, expected, observed,
                                                 last_alert_id, updated_ts
    {ns}:stream:{sid}:ack:{sig}           STRING JSON {alert_id, by, ts[, command_id]}
                                                 (operator; `driftline ack`)
    {ns}:stream:{sid}:snooze_until        STRING unix seconds             (operator)
    {ns}:stream:{sid}:disabled            STRING "1" when disabled        (operator)

Escaping: in a key, every id is percent-encoded for ``%``, ``:``, ``{``,
``}`` and whitespace/control characters (``esc``), so ids that contain ``:``
cannot collide (stream ``a`` + version ``b:c`` used to be stream ``a:b`` +
version ``c``) and no id forms a Redis Cluster hash tag. The namespace keeps
two deployments that share a Redis apart; the default (``driftline``) is the
old fixed prefix. Members and values (the streams set, the signals index,
JSON documents) hold ids as they are.

Migration from the unescaped layout (keys of ids without ``:`` are
unchanged under the default prefix): Redis holds nothing that is not on the
alerts and state topics, so delete the old keys of ids with ``:`` (or the
whole ``driftline:*`` space) and reset the ``<group>.redis`` consumer group
to the earliest offsets; the sink rewrites everything, idempotently.
Operator flags (acks, snoozes, disabled) of such streams are set again.

``write_alert`` runs one Lua script: the alert key is set only if absent, and
only then is its id appended to the history and the signal marked ``drift``
-- so a redelivered alert changes nothing. (The camera-health signals are
marked with the camera's state instead: ``sinks.redis_camera``.) ``write_state`` never lets an older
snapshot overwrite a newer one (``updated_ts`` is compared in the script).
A missing expected/observed value is stored as an empty string.

Examples
--------
>>> alert_key("cam-1:a3")
'driftline:alert:cam-1%3Aa3'
>>> signal_key("cam-1", "v2", "confidence", ns="acme")
'acme:stream:cam-1:v2:signal:confidence'
>>> signal_key("a", "b:c", "s") != signal_key("a:b", "c", "s")
True
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis

from driftline.errors import TransientError
from driftline.metrics import REDIS_WRITES
from schemas.events import Alert, StreamState
from schemas.wire import encode
from sinks.redis_camera import WRITE_CAMERA, alert_statuses, snapshot_statuses

PREFIX = "driftline"
"""The default namespace (``DRIFTLINE_TOPIC_PREFIX``'s default)."""
STREAMS_KEY = f"{PREFIX}:streams"
DEFAULT_ALERT_TTL_S = 30 * 24 * 3600

T = TypeVar("T")

_ESCAPE = {c: f"%{ord(c):02X}" for c in "%:{}"}


def esc(part: str) -> str:
    """An id made safe for one segment of a key (``%``, ``:``, braces, whitespace escaped).

    >>> esc("cam:1"), esc("50%"), esc("{tag}"), esc("a b"), esc("plain-id_1.2@x/y")
    ('cam%3A1', '50%25', '%7Btag%7D', 'a%20b', 'plain-id_1.2@x/y')
    """
    out = []
    for c in part:
        if c in _ESCAPE:
            out.append(_ESCAPE[c])
        elif c.isspace() or not c.isprintable():
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")))
        else:
            out.append(c)
    return "".join(out)


def streams_key(ns: str = PREFIX) -> str:
    return f"{ns}:streams"


def alert_key(alert_id: str, ns: str = PREFIX) -> str:
    return f"{ns}:alert:{esc(alert_id)}"


def stream_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{ns}:stream:{esc(stream_id)}"


def history_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:alerts"


def signals_index_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:signals"


def signal_key(stream_id: str, model_version: str, signal: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:{esc(model_version)}:signal:{esc(signal)}"


def ack_key(stream_id: str, signal: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:ack:{esc(signal)}"


def snooze_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:snooze_until"


def disabled_key(stream_id: str, ns: str = PREFIX) -> str:
    return f"{stream_key(stream_id, ns)}:disabled"


def _num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


# KEYS: alert, history, streams set, signals index, signal hash
# ARGV: alert json, alert id, history maxlen, stream id, ttl (0 = none),
#       index member, signal, model_version, severity, ts ms,
#       detector, statistic, threshold, expected, observed, status
_WRITE_ALERT = """
local ok
if tonumber(ARGV[5]) > 0 then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[5])
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
  'alert_id', ARGV[2], 'signal', ARGV[7], 'model_version', ARGV[8],
  'severity', ARGV[9], 'ts', ARGV[10])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[6])
local prev = tonumber(redis.call('HGET', KEYS[5], 'updated_ts') or '0') or 0
if tonumber(ARGV[10]) >= prev then
  redis.call('HSET', KEYS[5], 'status', ARGV[16], 'detector', ARGV[11],
    'statistic', ARGV[12], 'threshold', ARGV[13], 'expected', ARGV[14],
    'observed', ARGV[15], 'last_alert_id', ARGV[2], 'updated_ts', ARGV[10])
else
  redis.call('HSET', KEYS[5], 'last_alert_id', ARGV[2])
end
return 1
"""

# KEYS: streams set, signals index, then one signal hash per signal
# ARGV: stream id, ts ms, then per signal 8 values:
#       index member, status, detector, statistic, threshold, expected, observed, last_alert_id
_WRITE_STATE = """
redis.call('SADD', KEYS[1], ARGV[1])
local written = 0
for i = 3, #KEYS do
  local a = 3 + (i - 3) * 8
  redis.call('SADD', KEYS[2], ARGV[a])
  local prev = tonumber(redis.call('HGET', KEYS[i], 'updated_ts') or '0') or 0
  if tonumber(ARGV[2]) >= prev then
    redis.call('HSET', KEYS[i], 'status', ARGV[a + 1], 'detector', ARGV[a + 2],
      'statistic', ARGV[a + 3], 'threshold', ARGV[a + 4], 'expected', ARGV[a + 5],
      'observed', ARGV[a + 6], 'updated_ts', ARGV[2])
    if ARGV[a + 7] ~= '' then redis.call('HSET', KEYS[i], 'last_alert_id', ARGV[a + 7]) end
    written = written + 1
  end
end
return written
"""


def _client(redis_url: str) -> Any:
    # Any: redis-py types every reply as a bytes/str/awaitable union even with
    # decode_responses=True, which only adds noise at each call site.
    return redis.Redis.from_url(
        redis_url, socket_timeout=5.0, socket_connect_timeout=2.0, decode_responses=True
    )


def _guard(what: str, fn: Callable[[], T]) -> T:
    """Run a Redis call, translating connection problems to ``TransientError``."""
    try:
        return fn()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise TransientError(f"redis {what}: {exc}") from exc
    except redis.exceptions.BusyLoadingError as exc:  # restarted Redis reading its AOF
        raise TransientError(f"redis {what}: {exc}") from exc
    except redis.ResponseError as exc:
        if str(exc).startswith(("LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY")):
            raise TransientError(f"redis {what}: {exc}") from exc
        raise


@contextmanager
def _connection(redis_url: str) -> Iterator[Any]:
    client = _client(redis_url)
    try:
        yield client
    finally:
        client.close()


def _ts_ms(dt: Any) -> str:
    return str(int(dt.timestamp() * 1000))


class RedisStateWriter:
    """Idempotent writes of alerts and stream state (see the module docstring).

    Parameters
    ----------
    redis_url
        ``redis://host:port/db``.
    history
        Alerts kept per stream in the capped history stream (approximate).
    alert_ttl_s
        Alert documents expire after this; ``None`` keeps them forever.
    namespace
        The first segment of every key: the deployment's topic prefix.
    """

    def __init__(
        self,
        redis_url: str,
        history: int = 1000,
        *,
        alert_ttl_s: int | None = DEFAULT_ALERT_TTL_S,
        namespace: str = PREFIX,
    ) -> None:
        self.ns = namespace
        self.redis_url = redis_url
        self.history = history
        self.alert_ttl_s = alert_ttl_s
        self.client = _client(redis_url)
        self._write_alert = self.client.register_script(_WRITE_ALERT)
        self._write_state = self.client.register_script(_WRITE_STATE)
        self._write_camera = self.client.register_script(WRITE_CAMERA)

    def write_alert(self, alert: Alert) -> bool:
        """Store ``alert``; ``True`` if it was new, ``False`` if already stored."""
        member = json.dumps([alert.model_version, alert.signal])
        ns = self.ns
        keys = [
            alert_key(alert.alert_id, ns),
            history_key(alert.stream_id, ns),
            streams_key(ns),
            signals_index_key(alert.stream_id, ns),
            signal_key(alert.stream_id, alert.model_version, alert.signal, ns),
        ]
        args: list[Any] = [
            encode(alert).decode(),
            alert.alert_id,
            self.history,
            alert.stream_id,
            self.alert_ttl_s or 0,
            member,
            alert.signal,
            alert.model_version,
            alert.severity,
            _ts_ms(alert.ts),
            alert.detector,
            _num(alert.statistic),
            _num(alert.threshold),
            _num(alert.expected),
            _num(alert.observed),
        ]
        statuses = alert_statuses(alert)
        args.append(statuses.pop(alert.signal))
        new = bool(_guard("write_alert", lambda: self._write_alert(keys=keys, args=args)))
        if new and statuses:
            self._camera(alert.stream_id, alert.model_version, _ts_ms(alert.ts), statuses)
        REDIS_WRITES.labels("alert", "written" if new else "unchanged").inc()
        return new

    def write_state(self, state: StreamState) -> int:
        """Store each signal's current state; returns how many hashes were updated.

        A snapshot older than what is stored (a redelivered one) is ignored.
        """
        ns = self.ns
        keys = [streams_key(ns), signals_index_key(state.stream_id, ns)]
        args: list[Any] = [state.stream_id, _ts_ms(state.ts)]
        for name, sig in state.signals.items():
            keys.append(signal_key(state.stream_id, state.model_version, name, ns))
            args += [
                json.dumps([state.model_version, name]),
                sig.status,
                sig.detector,
                _num(sig.statistic),
                _num(sig.threshold),
                _num(sig.expected),
                _num(sig.observed),
                sig.last_alert_id or "",
            ]
        updated = int(_guard("write_state", lambda: self._write_state(keys=keys, args=args)))
        REDIS_WRITES.labels("state", "written" if updated else "unchanged").inc()
        model_version, camera = snapshot_statuses(state)
        if camera:
            self._camera(state.stream_id, model_version, _ts_ms(state.ts), camera)
        return updated

    def _camera(self, stream_id: str, model_version: str, ts_ms: str,
                statuses: dict[str, str]) -> int:
        """Set camera-health hashes that exist to ``statuses`` unless they are newer."""
        keys = [signal_key(stream_id, model_version, s, self.ns) for s in statuses]
        args = [ts_ms, *statuses.values()]
        return int(_guard("write_camera", lambda: self._write_camera(keys=keys, args=args)))

    def ping(self) -> bool:
        return bool(_guard("ping", self.client.ping))

    def close(self) -> None:
        self.client.close()


# -- readers ---------------------------------------------------------------


def _float_or_none(v: str | None) -> float | None:
    return float(v) if v else None


def read_stream(
    redis_url: str, stream_id: str, *, recent: int = 20, namespace: str = PREFIX
) -> dict[str, Any]:
    """Everything Redis knows about one stream (what ``driftline state STREAM`` prints).

    Returns ``{"stream_id", "known", "signals": [...], "recent_alerts": [...],
    "snooze_until", "disabled"}``; signals sorted by model version and name,
    each with its operator ``ack``; recent alerts newest first, full documents.
    """

    def read() -> dict[str, Any]:
        with _connection(redis_url) as r:
            ns = namespace
            known = bool(r.sismember(streams_key(ns), stream_id))
            members = sorted(json.loads(m) for m in r.smembers(signals_index_key(stream_id, ns)))
            signals = []
            for mv, sig in members:
                h = r.hgetall(signal_key(stream_id, mv, sig, ns))
                ack = r.get(ack_key(stream_id, sig, ns))
                signals.append(
                    {
                        "model_version": mv,
                        "signal": sig,
                        "status": h.get("status"),
                        "detector": h.get("detector"),
                        "statistic": _float_or_none(h.get("statistic")),
                        "threshold": _float_or_none(h.get("threshold")),
                        "expected": _float_or_none(h.get("expected")),
                        "observed": _float_or_none(h.get("observed")),
                        "last_alert_id": h.get("last_alert_id") or None,
                        "updated_ts": int(h["updated_ts"]) / 1000 if h.get("updated_ts") else None,
                        "ack": json.loads(ack) if ack else None,
                    }
                )
            ids = [f["alert_id"]
                   for _, f in r.xrevrange(history_key(stream_id, ns), count=recent)]
            docs = r.mget([alert_key(i, ns) for i in ids]) if ids else []
            alerts = [json.loads(d) for d in docs if d]  # expired documents are skipped
            snooze = r.get(snooze_key(stream_id, ns))
            return {
                "stream_id": stream_id,
                "known": known,
                "signals": signals,
                "recent_alerts": alerts,
                "snooze_until": float(snooze) if snooze else None,
                "disabled": r.get(disabled_key(stream_id, ns)) == "1",
            }

    return _guard("read_stream", read)


def read_alert(
    redis_url: str, alert_id: str, *, namespace: str = PREFIX
) -> dict[str, Any] | None:
    """One stored alert document, or ``None``."""

    def read() -> dict[str, Any] | None:
        with _connection(redis_url) as r:
            doc = r.get(alert_key(alert_id, namespace))
        return json.loads(doc) if doc else None

    return _guard("read_alert", read)


def list_streams(redis_url: str, *, namespace: str = PREFIX) -> list[str]:
    """Every stream id seen, sorted."""

    def read() -> list[str]:
        with _connection(redis_url) as r:
            return sorted(r.smembers(streams_key(namespace)))

    return _guard("list_streams", read)


# -- operator flags --------------------------------------------------------


def acknowledge(
    redis_url: str,
    stream_id: str,
    signal: str,
    alert_id: str | None = None,
    by: str = "",
    *,
    command_id: str | None = None,
    namespace: str = PREFIX,
) -> None:
    """Mark ``signal`` of ``stream_id`` acknowledged (optionally naming the alert).

    ``command_id``: the ``rereference`` command published with the
    acknowledgement (``driftline ack``), stored in the document.
    """
    doc: dict[str, Any] = {"alert_id": alert_id, "by": by, "ts": time.time()}
    if command_id is not None:
        doc["command_id"] = command_id
    doc_text = json.dumps(doc)

    def write() -> None:
        with _connection(redis_url) as r:
            r.set(ack_key(stream_id, signal, namespace), doc_text)

    _guard("acknowledge", write)


def snooze(redis_url: str, stream_id: str, seconds: float, *, namespace: str = PREFIX) -> float:
    """Snooze notifications for ``stream_id`` for ``seconds``; returns the end (unix s).

    The key expires when the snooze ends; ``seconds <= 0`` clears it.
    """
    until = time.time() + seconds

    def write() -> None:
        with _connection(redis_url) as r:
            if seconds <= 0:
                r.delete(snooze_key(stream_id, namespace))
            else:
                r.set(snooze_key(stream_id, namespace), repr(until), px=max(1, int(seconds * 1000)))

    _guard("snooze", write)
    return until


def set_disabled(
    redis_url: str, stream_id: str, disabled: bool = True, *, namespace: str = PREFIX
) -> None:
    """Disable (or re-enable) notifications for ``stream_id``."""

    def write() -> None:
        with _connection(redis_url) as r:
            if disabled:
                r.set(disabled_key(stream_id, namespace), "1")
            else:
                r.delete(disabled_key(stream_id, namespace))

    _guard("set_disabled", write)


def muted(
    client: Any, stream_id: str, now: float | None = None, *, namespace: str = PREFIX
) -> str | None:
    """Why notifications for ``stream_id`` are muted (``disabled``/``snoozed``), or ``None``."""
    now = time.time() if now is None else now
    disabled, until = _guard(
        "muted", lambda: client.mget([disabled_key(stream_id, namespace),
                                      snooze_key(stream_id, namespace)])
    )
    if disabled in ("1", b"1"):
        return "disabled"
    if until and float(until) > now:
        return "snoozed"
    return None
