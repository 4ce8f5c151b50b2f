"""The fleet at a glance from Redis: a page of streams in three pipelined round trips.

``read_stream`` (``sinks.redis_state``) reads one stream in full, a call per
signal; the operator's fleet view and alert timeline need, for many streams,
only each signal's status and update time, the latest alerts, the alerts'
lifecycle states, the controls in force and the operator flags. ``read_heads``
reads exactly that for a list of stream ids: one pipeline for the signal
indexes, alert histories, lifecycles and flags, one for the signal statuses,
the alert documents and the controls documents (``sinks.alert_lifecycle``).
Bounded by the caller's page of ids and ``recent`` alerts per stream.

``read_signals`` reads only the signals (what ``Head.signals`` holds) of any
number of streams, ``FLEET_CHUNK`` streams per pair of pipelines, so a reply
stays bounded however large the fleet: the whole-fleet drift overview
(``driftline.api.drift``) reads every stream with it in one pass.

Examples
--------
>>> signal_row("v2", "output.confidence", "drift", "1767225600500")["updated_ts"]
1767225600.5
>>> signal_row("v2", "output.confidence", None, None)["updated_ts"] is None
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sinks.alert_lifecycle import controls_key, stream_lifecycles_key
from sinks.redis_state import (
    PREFIX,
    _connection,
    _guard,
    alert_key,
    disabled_key,
    history_key,
    signal_key,
    signals_index_key,
    snooze_key,
)

FLEET_CHUNK = 500
"""Streams ``read_signals`` reads per pair of pipelines (the API's ``MAX_PAGE``)."""


def signal_row(model_version: str, signal: str, status: str | None,
               updated_ms: str | None) -> dict[str, Any]:
    """One signal as ``Head.signals`` holds it (``updated_ts`` in unix seconds)."""
    return {"model_version": model_version, "signal": signal, "status": status,
            "updated_ts": int(updated_ms) / 1000 if updated_ms else None}


def index_entries(members: set[str] | set[bytes]) -> list[tuple[str, str]]:
    """A stream's signal index (``signals_index_key`` members), as sorted (model version, signal).

    >>> index_entries({'["v2", "output.confidence"]', '["v1", "output.confidence"]'})
    [('v1', 'output.confidence'), ('v2', 'output.confidence')]
    """
    return sorted(tuple(json.loads(m)) for m in members)


@dataclass(frozen=True)
class Head:
    """One stream at a glance.

    ``signals``: ``{"model_version", "signal", "status", "updated_ts"}`` each
    (sorted; empty when not asked for); ``alerts``: the latest alert
    documents, newest first (expired ones skipped); ``lifecycles``: alert id
    -> lifecycle state; ``controls``: model version -> its controls document
    (``LifecycleWriter.write_controls``; read only with ``signals``).
    """

    signals: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snooze_until: float | None = None
    disabled: bool = False
    lifecycles: dict[str, str] = field(default_factory=dict)
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_heads(redis_url: str, stream_ids: list[str], *, recent: int = 1, signals: bool = True,
               namespace: str = PREFIX) -> dict[str, Head]:
    """``Head`` of each stream id (see the module docstring)."""
    ns = namespace

    def read() -> dict[str, Head]:
        with _connection(redis_url) as r:
            pipe = r.pipeline(transaction=False)
            for sid in stream_ids:
                if signals:
                    pipe.smembers(signals_index_key(sid, ns))
                pipe.xrevrange(history_key(sid, ns), count=recent)
                pipe.mget([snooze_key(sid, ns), disabled_key(sid, ns)])
                pipe.hgetall(stream_lifecycles_key(sid, ns))
            first = iter(pipe.execute())
            index: dict[str, list[tuple[str, str]]] = {}
            alert_ids: dict[str, list[str]] = {}
            flags: dict[str, list[str | None]] = {}
            lifecycles: dict[str, dict[str, str]] = {}
            for sid in stream_ids:
                index[sid] = index_entries(next(first)) if signals else []
                alert_ids[sid] = [f["alert_id"] for _, f in next(first)]
                flags[sid] = next(first)
                lifecycles[sid] = dict(next(first))
            versions = {sid: sorted({mv for mv, _ in index[sid]}) for sid in stream_ids}
            for sid in stream_ids:
                for mv, sig in index[sid]:
                    pipe.hmget(signal_key(sid, mv, sig, ns), "status", "updated_ts")
                if alert_ids[sid]:
                    pipe.mget([alert_key(a, ns) for a in alert_ids[sid]])
                if versions[sid]:
                    pipe.mget([controls_key(sid, mv, ns) for mv in versions[sid]])
            second = iter(pipe.execute())
            out = {}
            for sid in stream_ids:
                sigs = [signal_row(mv, sig, *next(second)) for mv, sig in index[sid]]
                docs = [json.loads(d) for d in next(second) if d] if alert_ids[sid] else []
                controls = {mv: json.loads(d) for mv, d in
                            zip(versions[sid], next(second), strict=True) if d} \
                    if versions[sid] else {}
                snooze, disabled = flags[sid]
                out[sid] = Head(sigs, docs, float(snooze) if snooze else None, disabled == "1",
                                lifecycles[sid], controls)
            return out

    return _guard("read_heads", read)


def read_signals(redis_url: str, stream_ids: list[str], *, namespace: str = PREFIX,
                 chunk: int = FLEET_CHUNK) -> dict[str, list[dict[str, Any]]]:
    """Each stream id -> its signals as ``Head.signals`` holds them (sorted), in one pass.

    ``chunk`` streams at a time: one pipeline for their signal indexes, one for
    the signals' ``status`` and ``updated_ts``; no alerts, lifecycles, controls
    or flags (``read_heads`` reads those for a page). A stream whose index is
    gone (or never written) has no signals.
    """
    ns, step = namespace, max(chunk, 1)

    def read() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        with _connection(redis_url) as r:
            for start in range(0, len(stream_ids), step):
                ids = stream_ids[start:start + step]
                pipe = r.pipeline(transaction=False)
                for sid in ids:
                    pipe.smembers(signals_index_key(sid, ns))
                index = {sid: index_entries(members)
                         for sid, members in zip(ids, pipe.execute(), strict=True)}
                for sid in ids:
                    for mv, sig in index[sid]:
                        pipe.hmget(signal_key(sid, mv, sig, ns), "status", "updated_ts")
                got = iter(pipe.execute())
                for sid in ids:
                    out[sid] = [signal_row(mv, sig, *next(got)) for mv, sig in index[sid]]
        return out

    return _guard("read_signals", read)
