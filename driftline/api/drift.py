"""Is it this camera, or the model? The fleet's signals in drift, grouped.

When alerts come in, an operator of a fleet first asks whether one camera
changed (its scene, its lens, its exposure) or a model version did (every
camera running it drifts on the same signal at once). ``drift_overview``
answers from each stream's signals as Redis holds them
(``sinks.redis_fleet.read_signals``): every (model version, signal) with at
least one stream in drift (``status == "drift"``), with the streams in drift
and how many streams of that model version Redis knows. Its ``scope``:

- ``model``: at least ``MIN_STREAMS`` (2) streams, and at least half of the
  model version's streams, are in drift on the signal;
- ``fleet``: the same rule for a camera health signal over every stream
  (``camera.status``, ``camera.silent``: grouped by signal alone, since they
  report the camera, not a model; counted when the camera is not ``ok``);
- ``streams``: fewer (look at those cameras).

Bounded: at most ``MAX_STREAM_IDS`` ids per group and ``MAX_GROUPS`` groups
are listed, each with its full count.

Examples
--------
>>> def sig(mv, name, status, ts):
...     return {"model_version": mv, "signal": name, "status": status, "updated_ts": ts}
>>> fleet = {f"cam-{i}": [sig("v2", "output.confidence", "drift" if i < 3 else "ok", 10.0 + i)]
...          for i in range(4)}
>>> fleet["cam-9"] = [sig("v1", "quality.brightness", "drift", 5.0),
...                   sig("v1", "camera.status", "offline", 6.0)]
>>> out = drift_overview(fleet)
>>> for g in out.groups:
...     print(g.model_version, g.signal, g.scope, g.in_drift, g.streams_known)
v2 output.confidence model 3 4
v1 quality.brightness streams 1 1
None camera.status streams 1 5
>>> g = out.groups[0]
>>> g.stream_ids, g.first_updated_ts, g.last_updated_ts, g.statuses
(['cam-0', 'cam-1', 'cam-2'], 10.0, 12.0, {'drift': 3})
>>> capped = drift_overview(fleet, max_ids=2, max_groups=1)
>>> capped.groups_total, len(capped.groups), capped.groups[0].stream_ids
(3, 1, ['cam-0', 'cam-1'])
>>> drift_overview({}).model_dump()
{'streams_known': 0, 'groups_total': 0, 'groups': []}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.models import DriftGroup, DriftOverview, DriftScope
from sinks.redis_camera import is_camera

MAX_STREAM_IDS = 50
MAX_GROUPS = 200
MIN_STREAMS = 2
"""A model version's (or the fleet's) drift needs at least this many streams in it."""


def scope_of(in_drift: int, known: int, camera: bool) -> DriftScope:
    """``model`` (``fleet`` for a camera signal) when ``in_drift >= MIN_STREAMS`` and at
    least half of ``known``, else ``streams``.

    >>> scope_of(3, 4, False), scope_of(2, 4, False), scope_of(2, 5, False), scope_of(1, 1, False)
    ('model', 'model', 'streams', 'streams')
    >>> scope_of(3, 6, True), scope_of(2, 6, True)
    ('fleet', 'streams')
    """
    if in_drift >= MIN_STREAMS and 2 * in_drift >= known:
        return "fleet" if camera else "model"
    return "streams"


def in_drift(signal: dict[str, Any]) -> bool:
    """A model's signal in drift, or a camera signal whose camera is not ``ok``.

    >>> in_drift({"signal": "output.confidence", "status": "drift"})
    True
    >>> in_drift({"signal": "camera.silent", "status": "silent"})
    True
    >>> [in_drift({"signal": "camera.status", "status": s}) for s in ("ok", None)]
    [False, False]
    """
    status = signal.get("status")
    if is_camera(signal["signal"]):
        return status not in (None, "ok")
    return status == "drift"


def drift_overview(signals: Mapping[str, list[dict[str, Any]]], *,
                   max_ids: int = MAX_STREAM_IDS, max_groups: int = MAX_GROUPS
                   ) -> DriftOverview:
    """Group the fleet's signals in drift (see the module docstring).

    Parameters
    ----------
    signals
        Stream id -> its signals, each ``{"model_version", "signal", "status",
        "updated_ts"}`` (``sinks.redis_fleet.read_signals``): every stream Redis
        knows, since they make the denominators.
    max_ids, max_groups
        Stream ids listed per group, groups listed.
    """
    per_version: dict[str, set[str]] = {}
    # (model version, or None for a camera signal; signal) -> stream id -> its matching
    # signals' (status, updated_ts). Keyed by stream: a camera signal held under two
    # model versions of one stream still counts that stream once.
    found: dict[tuple[str | None, str], dict[str, list[tuple[str, float | None]]]] = {}
    for sid, sigs in signals.items():
        for s in sigs:
            per_version.setdefault(s["model_version"], set()).add(sid)
            if not in_drift(s):
                continue
            key = (None, s["signal"]) if is_camera(s["signal"]) else (s["model_version"],
                                                                       s["signal"])
            found.setdefault(key, {}).setdefault(sid, []).append((s["status"], s["updated_ts"]))
    groups = []
    for (mv, name), streams in found.items():
        camera = mv is None
        known = len(signals) if mv is None else len(per_version[mv])
        stamps = [ts for rows in streams.values() for _, ts in rows if ts is not None]
        statuses: dict[str, int] = {}
        for rows in streams.values():
            for status in sorted({st for st, _ in rows}):
                statuses[status] = statuses.get(status, 0) + 1
        groups.append(DriftGroup(
            model_version=mv, signal=name, camera=camera,
            scope=scope_of(len(streams), known, camera), in_drift=len(streams),
            streams_known=known, stream_ids=sorted(streams)[:max_ids],
            statuses=dict(sorted(statuses.items())),
            first_updated_ts=min(stamps, default=None), last_updated_ts=max(stamps, default=None)))
    groups.sort(key=lambda g: (-g.in_drift, g.model_version is None, g.model_version or "",
                               g.signal))
    return DriftOverview(streams_known=len(signals), groups_total=len(groups),
                         groups=groups[:max_groups])
