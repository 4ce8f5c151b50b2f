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

Stale streams are left out. Nothing deletes a model version's signals from
Redis: after cameras move from ``v1`` to ``v2``, their ``v1`` streams stop
updating but stay, and a ``v1`` signal in drift when the version was retired
would show as in drift forever, in denominators that count dead streams. A
stream (camera x model version) whose newest ``updated_ts`` is more than
``stale_after_s`` (``DRIFTLINE_API__STALE_AFTER_S``) before ``now`` is stale:
none of its signals is grouped (a camera signal it holds neither) and it is
in no denominator; a camera counts in the camera signals' denominator while
one of its model versions is fresh. The stale are not dropped silently:
``stale`` counts them per model version (and those of them in drift), with
their newest update. ``now`` is the API's wall clock (``time.time()`` at the
request), as the page's "updated N s ago" judges ``updated_ts``: the worker's
wall clock when it took the snapshot (``StreamState.ts``), so a recording
published today is fresh whatever its frames' timestamps. A stream whose signals carry no
``updated_ts`` cannot be judged and counts. A camera down for longer than
the window (its camera signals do not update either) leaves the groups with
its model versions: it is counted in ``stale`` and the fleet view
(``GET /api/v1/streams``) still shows it offline or silent; a decommissioned
camera would otherwise stay in the ``fleet`` scope's denominator, and its
last ``offline`` in the groups, forever.

Bounded: at most ``MAX_STREAM_IDS`` ids per group, ``MAX_GROUPS`` groups and
``MAX_GROUPS`` stale model versions are listed, each with its full count.

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
>>> drift_overview({}).model_dump()  # doctest: +NORMALIZE_WHITESPACE
{'streams_known': 0, 'groups_total': 0, 'groups': [],
 'stale_after_s': 0.0, 'stale_total': 0, 'stale': []}

An hour later cam-0 runs v3 and drifts there; nothing else updated since: the
streams of v2 and v1 are stale, left out of groups and denominators, and counted.

>>> fleet["cam-0"].append(sig("v3", "output.confidence", "drift", 3600.0 + 20.0))
>>> out = drift_overview(fleet, now=3600.0 + 25.0, stale_after_s=3600.0)
>>> for g in out.groups:
...     print(g.model_version, g.signal, g.scope, g.in_drift, g.streams_known, g.stream_ids)
v3 output.confidence streams 1 1 ['cam-0']
>>> [(s.model_version, s.streams, s.in_drift, s.last_updated_ts) for s in out.stale]
[('v2', 4, 3, 13.0), ('v1', 1, 1, 6.0)]
>>> out.streams_known, out.stale_total
(5, 5)

Exactly ``stale_after_s`` old is still fresh (cam-0's v2, updated at 10.0):

>>> [(s.model_version, s.streams) for s in drift_overview(fleet, now=3610.0,
...                                                          stale_after_s=3600.0).stale]
[('v1', 1)]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.models import DriftGroup, DriftOverview, DriftScope, StaleVersion
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


def drift_overview(signals: Mapping[str, list[dict[str, Any]]], *, now: float | None = None,
                   stale_after_s: float = 0.0, max_ids: int = MAX_STREAM_IDS,
                   max_groups: int = MAX_GROUPS) -> DriftOverview:
    """Group the fleet's signals in drift, leaving out the stale (see the module docstring).

    Parameters
    ----------
    signals
        Stream id -> its signals, each ``{"model_version", "signal", "status",
        "updated_ts"}`` (``sinks.redis_fleet.read_signals``): every stream Redis
        knows, since they make the denominators.
    now
        Unix seconds the streams' ages are judged at (the API's wall clock);
        required when ``stale_after_s`` is set.
    stale_after_s
        A stream (camera x model version) whose newest ``updated_ts`` is older
        than ``now - stale_after_s`` is stale; 0: none is.
    max_ids, max_groups
        Stream ids listed per group, groups (and stale model versions) listed.
    """
    if stale_after_s > 0 and now is None:
        raise ValueError("now is required to judge staleness (stale_after_s > 0)")
    # (stream, model version) -> its newest update; one without any cannot be judged.
    newest: dict[tuple[str, str], float] = {}
    for sid, sigs in signals.items():
        for s in sigs:
            if (ts := s["updated_ts"]) is not None:
                pair = (sid, s["model_version"])
                newest[pair] = max(newest.get(pair, ts), ts)
    cutoff = now - stale_after_s if stale_after_s > 0 and now is not None else None
    stale = {pair: ts for pair, ts in newest.items() if cutoff is not None and ts < cutoff}
    # model version -> its stale streams, and of them those in drift, and their newest update.
    left_out: dict[str, tuple[set[str], set[str], float]] = {}
    for (sid, version), ts in stale.items():
        sids, drifting, last = left_out.get(version, (set(), set(), ts))
        sids.add(sid)
        if any(in_drift(s) for s in signals[sid] if s["model_version"] == version):
            drifting.add(sid)
        left_out[version] = (sids, drifting, max(last, ts))
    # A camera counts for the camera signals while one of its model versions is fresh (or
    # it has no signal to judge it by).
    cameras = sum(1 for sid, sigs in signals.items()
                  if not sigs or any((sid, s["model_version"]) not in stale for s in sigs))
    per_version: dict[str, set[str]] = {}
    # (model version, or None for a camera signal; signal) -> stream id -> its matching
    # signals' (status, updated_ts). Keyed by stream: a camera signal held under two
    # model versions of one stream still counts that stream once.
    found: dict[tuple[str | None, str], dict[str, list[tuple[str, float | None]]]] = {}
    for sid, sigs in signals.items():
        for s in sigs:
            if (sid, s["model_version"]) in stale:
                continue
            per_version.setdefault(s["model_version"], set()).add(sid)
            if not in_drift(s):
                continue
            key = (None, s["signal"]) if is_camera(s["signal"]) else (s["model_version"],
                                                                       s["signal"])
            found.setdefault(key, {}).setdefault(sid, []).append((s["status"], s["updated_ts"]))
    groups = []
    for (mv, name), streams in found.items():
        camera = mv is None
        known = cameras if mv is None else len(per_version[mv])
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
    versions = sorted((StaleVersion(model_version=mv, streams=len(sids), in_drift=len(drifting),
                                    last_updated_ts=last)
                       for mv, (sids, drifting, last) in left_out.items()),
                      key=lambda v: (-v.streams, v.model_version))
    return DriftOverview(streams_known=len(signals), groups_total=len(groups),
                         groups=groups[:max_groups], stale_after_s=max(stale_after_s, 0.0),
                         stale_total=len(stale), stale=versions[:max_groups])
