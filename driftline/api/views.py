"""The API's reads: Redis (``sinks.redis_state``, ``sinks.redis_series``) shaped for the page.

Alongside the signals and alerts: each alert's lifecycle state and each
stream's controls in force (snoozed and disabled signals, the latest
controls with who/when/why), as the sinks mirror them from the alert and
state topics (``sinks.alert_lifecycle``).

Every read is bounded: a fleet page is at most ``MAX_PAGE`` streams, a
timeline at most ``MAX_ALERTS`` alerts, a series what the sinks keep; the
drift overview reads every stream's signals (statuses only, ``MAX_PAGE``
streams per round trip pair) and lists capped groups (``driftline.api.drift``).

Examples
--------
>>> frame_id_of("cam-1-f00000123:emb"), frame_id_of("cam-1-p00000123")
('cam-1-f00000123', 'cam-1-p00000123')
>>> stream_status([{"status": "ok"}, {"status": "drift"}]), stream_status([])
('drift', 'unknown')
>>> stream_status([{"signal": "camera.silent", "status": "ok"}, {"status": "warming_up"}])
'warming_up'
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from driftline.api.drift import drift_overview
from driftline.api.models import (
    AlertBrief,
    AlertDetail,
    ChangePoint,
    DriftOverview,
    Fleet,
    FrameRef,
    SeriesPoint,
    SignalHistory,
    StreamSignals,
    StreamStatus,
    StreamSummary,
    Timeline,
)
from driftline.settings import Settings
from schemas.events import Alert
from sinks.alert_lifecycle import (
    in_force,
    open_count,
    read_alert_lifecycle,
    read_controls,
    read_lifecycles,
)
from sinks.redis_camera import camera_of, is_camera
from sinks.redis_fleet import Head, read_heads, read_signals
from sinks.redis_series import read_series
from sinks.redis_state import list_streams, read_alert, read_stream

MAX_PAGE = 500
MAX_ALERTS = 500
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def stream_status(signals: list[dict[str, Any]]) -> StreamStatus:
    """The stream's word from its signals' (the camera's own state aside: ``camera``)."""
    statuses = {s.get("status") for s in signals if not is_camera(s.get("signal", ""))}
    if not statuses:
        return "unknown"
    if "drift" in statuses:
        return "drift"
    return "ok" if "ok" in statuses else "warming_up"


def brief(doc: dict[str, Any], lifecycles: dict[str, str] | None = None) -> AlertBrief:
    """An alert document in a list, its ``lifecycle`` the mirrored one when known."""
    fields = {k: doc.get(k) for k in AlertBrief.model_fields if k in doc}
    if lifecycles and doc.get("alert_id") in lifecycles:
        fields["lifecycle"] = lifecycles[doc["alert_id"]]
    return AlertBrief.model_validate(fields)


class Views:
    """Reads for one deployment (its Redis and namespace)."""

    def __init__(self, settings: Settings) -> None:
        self.redis_url = settings.redis_url
        self.ns = settings.topic_prefix
        self.frames_dir = settings.api.frames_dir
        self.stale_after_s = settings.stale_after_s

    def _stream(self, stream_id: str, recent: int) -> dict[str, Any]:
        return read_stream(self.redis_url, stream_id, recent=recent, namespace=self.ns)

    def fleet(self, offset: int = 0, limit: int = 100) -> Fleet:
        ids = list_streams(self.redis_url, namespace=self.ns)
        page = ids[offset:offset + min(limit, MAX_PAGE)]
        heads = self._heads(page, recent=1)
        out = []
        for sid in page:
            h = heads[sid]
            sigs, alerts = h.signals, h.alerts
            now = in_force(h.controls.values())
            out.append(StreamSummary(
                stream_id=sid,
                status=stream_status(sigs),
                model_versions=sorted({s["model_version"] for s in sigs}),
                last_update_ts=max((s["updated_ts"] for s in sigs if s["updated_ts"]),
                                   default=None),
                signals_in_drift=sorted({s["signal"] for s in sigs if s["status"] == "drift"}),
                signals=len(sigs),
                last_alert=brief(alerts[0], h.lifecycles) if alerts else None,
                snooze_until=h.snooze_until,
                disabled=h.disabled,
                camera=camera_of(sigs),
                last_event_ts=now["last_event_ts"],
                open_alerts=open_count(h.lifecycles),
                snoozed=now["snoozed"],
                disabled_signals=now["disabled"],
            ))
        return Fleet(total=len(ids), streams=out)

    def drift(self) -> DriftOverview:
        """Every signal in drift now, grouped by model version and signal (camera signals by
        signal alone): one camera's, or the model version's (``drift_overview``); streams
        not updated for ``stale_after_s`` left out and counted.

        ``now`` is this process's wall clock, read once, after the signals: ``updated_ts``
        is the worker's wall clock at its snapshot (``StreamState.ts``), which the page's
        "updated N s ago" judges by the browser's wall clock the same way.
        """
        ids = list_streams(self.redis_url, namespace=self.ns)
        signals = read_signals(self.redis_url, ids, namespace=self.ns, chunk=MAX_PAGE)
        return drift_overview(signals, now=time.time(), stale_after_s=self.stale_after_s)

    def _heads(self, ids: list[str], recent: int, signals: bool = True) -> dict[str, Head]:
        return read_heads(self.redis_url, ids, recent=recent, signals=signals,
                          namespace=self.ns)

    def signals(self, stream_id: str, *, signal: str | None = None,
                model_version: str | None = None, points: int | None = None) -> StreamSignals:
        st = self._stream(stream_id, recent=100)
        sigs = [s for s in st["signals"]
                if (signal is None or s["signal"] == signal)
                and (model_version is None or s["model_version"] == model_version)]
        series: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for mv in sorted({s["model_version"] for s in sigs}):
            names = [s["signal"] for s in sigs if s["model_version"] == mv]
            got = read_series(self.redis_url, stream_id, mv, names, last=points, namespace=self.ns)
            series.update({(mv, n): pts for n, pts in got.items()})
        alerts = st["recent_alerts"]
        lifecycles = read_lifecycles(self.redis_url, stream_id, namespace=self.ns)
        versions = sorted({s["model_version"] for s in st["signals"]})
        docs = read_controls(self.redis_url, stream_id, versions, namespace=self.ns)
        now = in_force(docs.values())
        out = []
        for s in sigs:
            mine = in_force([docs[s["model_version"]]] if s["model_version"] in docs else [])
            changes = [ChangePoint(alert_id=a["alert_id"], change_index=a["change_index"],
                                   detected_index=a["detected_index"], severity=a["severity"])
                       for a in alerts
                       if a["signal"] == s["signal"] and a["model_version"] == s["model_version"]]
            out.append(SignalHistory(
                **s, series=[SeriesPoint(**p) for p in series.get((s["model_version"],
                                                                   s["signal"]), [])],
                change_points=changes, snoozed_until=mine["snoozed"].get(s["signal"]),
                disabled=s["signal"] in mine["disabled"]))
        return StreamSignals(stream_id=stream_id, known=st["known"],
                             snooze_until=st["snooze_until"], disabled=st["disabled"],
                             signals=out, recent_alerts=[brief(a, lifecycles) for a in alerts],
                             open_alerts=open_count(lifecycles), snoozed=now["snoozed"],
                             disabled_signals=now["disabled"], controls=now["history"])

    def timeline(self, *, stream_id: str | None = None, limit: int = 50) -> Timeline:
        limit = min(limit, MAX_ALERTS)
        ids = [stream_id] if stream_id else list_streams(self.redis_url, namespace=self.ns)
        alerts: list[dict[str, Any]] = []
        lifecycles: dict[str, str] = {}
        for head in self._heads(ids[:MAX_PAGE], recent=limit, signals=False).values():
            alerts += head.alerts
            lifecycles.update(head.lifecycles)
        alerts.sort(key=lambda a: a["ts"], reverse=True)
        return Timeline(alerts=[brief(a, lifecycles) for a in alerts[:limit]])

    def alert(self, alert_id: str) -> AlertDetail | None:
        doc = read_alert(self.redis_url, alert_id, namespace=self.ns)
        if doc is None:
            return None
        alert = Alert.model_validate(doc)
        before = [self._frame(alert.stream_id, e) for e in alert.examples_before]
        after = [self._frame(alert.stream_id, e) for e in alert.examples_after]
        stored = sum(f.url is not None for f in before + after)
        if self.frames_dir is None:
            note = ("frames are not stored where the API can read them (set "
                    "DRIFTLINE_API__FRAMES_DIR): only their ids are shown")
        else:
            note = f"{stored} of {len(before) + len(after)} example frames found in the frame store"
        life = read_alert_lifecycle(self.redis_url, alert_id, namespace=self.ns) or {}
        return AlertDetail(alert=alert, lifecycle=life.get("state", alert.lifecycle),
                           lifecycle_by=life.get("by") or None,
                           lifecycle_reason=life.get("reason") or None,
                           frames_before=before, frames_after=after, frames_note=note)

    def _frame(self, stream_id: str, event_id: str) -> FrameRef:
        fid = frame_id_of(event_id)
        path = self.frame_path(stream_id, fid)
        url = f"/api/v1/frames/{stream_id}/{fid}" if path is not None else None
        return FrameRef(event_id=event_id, frame_id=fid, url=url)

    def frame_path(self, stream_id: str, frame_id: str) -> Path | None:
        """The stored file of a frame (a regular file under ``frames_dir``), or ``None``."""
        if self.frames_dir is None or not _safe_name(stream_id) or not _safe_name(frame_id):
            return None
        root = self.frames_dir.resolve()
        for suffix in FRAME_SUFFIXES:
            path = (root / stream_id / f"{frame_id}{suffix}").resolve()
            if path.is_relative_to(root) and path.is_file():
                return path
        return None


def frame_id_of(event_id: str) -> str:
    """The frame an example event stands for (an embedding's id is ``<frame id>:emb``)."""
    return event_id.removesuffix(":emb")


def _safe_name(part: str) -> bool:
    return bool(part) and part not in (".", "..") and "/" not in part and "\\" not in part \
        and "\x00" not in part
