"""Reference management: re-reference on demand, reference bundles, operator commands.

Streams are the seeded, correlated camera-like streams of ``test_monitor``:
brightness drops by 40 at a known index, everything else stays put.
"""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.bundle_export import RecordingNotClean, export_reference
from processors.bundles import monitor_from_bundle, read_bundle, write_bundle
from processors.commands import apply_command
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.replay import Fired, replay_lines
from schemas.events import Command
from schemas.wire import encode
from tests.unit.test_monitor import SETTINGS, camera_like, run

REF = 450  # events of clean reference data: 200 quality values, 200 + 200 embeddings
SHIFT = 1000


def _lines(events) -> list[bytes]:
    return [encode(e) for e in events]


@pytest.fixture(scope="module")
def events() -> list:
    return list(camera_like(1400, seed=3, shift_at=SHIFT))


@pytest.fixture(scope="module")
def warm(events) -> StreamMonitor:
    """A monitor that has calibrated every signal the stream carries (don't mutate)."""
    m = StreamMonitor("cam", "v1", SETTINGS)
    assert run(m, events[:REF]) == []
    return m


def _copy(m: StreamMonitor, stream_id: str = "cam", model_version: str = "v1") -> StreamMonitor:
    state = json.loads(json.dumps(m.state()))
    return StreamMonitor.from_state({**state, "stream_id": stream_id,
                                     "model_version": model_version})


# -- re-reference on demand --------------------------------------------------------


def test_rereference_warms_the_signal_up_again_and_recalibrates(warm, events):
    m = _copy(warm)
    assert m.signals["quality.brightness"].status == "ok"
    assert m.rereference(["quality.brightness"]) == ["quality.brightness"]
    snap = m.snapshot().signals["quality.brightness"]
    assert snap.status == "warming_up" and snap.expected is None and snap.threshold is None
    assert m.signals["quality.contrast"].status == "ok"  # the others are untouched
    run(m, events[REF : REF + SETTINGS.reference_size - 1])
    assert m.signals["quality.brightness"].status == "warming_up"
    run(m, events[REF + SETTINGS.reference_size - 1 : REF + SETTINGS.reference_size])
    assert m.signals["quality.brightness"].status == "ok"
    assert m.signals["quality.brightness"].detector is not None


def test_rereferencing_an_embedding_signal_refits_the_basis_for_both(warm, events):
    m = _copy(warm)
    assert m.rereference(["embedding.residual"]) == [
        "embedding.distance", "embedding.residual", "embedding.outlier"]
    assert "embedding" not in m.references
    n = SETTINGS.reference_size
    run(m, events[REF : REF + n])
    assert "embedding" in m.references  # re-fitted on the next N vectors ...
    assert m.signals["embedding.distance"].status == "warming_up"  # ... then N scores
    run(m, events[REF + n : REF + 2 * n])
    assert {m.signals[s].status for s in ("embedding.distance", "embedding.residual")} == {"ok"}


def test_rereference_all_and_unknown_signals(warm):
    m = _copy(warm)
    with pytest.raises(ValueError, match=r"known signals: .*quality\.brightness") as info:
        m.rereference(["quality.brightness", "quality.brightnes"])
    assert "'quality.brightnes'" in str(info.value)
    assert m.signals["quality.brightness"].status == "ok"  # nothing changed
    assert m.rereference() == StreamMonitor.known_signals()
    assert {s.status for s in m.signals.values()} == {"warming_up"}
    assert m.references == {}


def test_after_an_acknowledged_change_only_a_new_change_alerts():
    # Darkened from 1000 (alerts), acknowledged and re-referenced at 1050 on the
    # dark regime; back to the original brightness at 1700: a new change.
    evs = list(camera_like(2100, seed=3, shift_at=SHIFT))
    evs[1700:] = [e.model_copy(update={"quality": {**e.quality,
                                                   "brightness": e.quality["brightness"] + 40}})
                  for e in evs[1700:]]
    m = StreamMonitor("cam", "v1", SETTINGS)
    first = [a for a in run(m, evs[:1050]) if a.signal == "quality.brightness"]
    assert [a.detected_index for a in first] == [1005]
    assert m.signals["quality.brightness"].status == "drift"
    m.rereference(["quality.brightness"])
    quiet = [a for a in run(m, evs[1050:1700]) if a.signal == "quality.brightness"]
    assert quiet == [], [a.message for a in quiet]
    assert m.signals["quality.brightness"].status == "ok"
    again = [a for a in run(m, evs[1700:]) if a.signal == "quality.brightness"]
    assert again and 1700 <= again[0].detected_index <= 1760
    assert again[0].observed > again[0].expected


# -- reference bundles --------------------------------------------------------------


def test_bundle_export_load_fires_where_the_warmed_up_monitor_fires(events, tmp_path):
    exported = export_reference(_lines(events[:REF]), stream_id="cam", monitor=SETTINGS)
    assert exported.bundle.events_used == REF
    assert "quality.brightness" in exported.bundle.signals
    # Signals this recording never feeds (no predictions, no edge embeddings,
    # no labels, no boxes) stay warming up.
    assert set(exported.warming_up) == {
        "edge.distance", "edge.residual", "edge.outlier", "output.confidence",
        "output.entropy", "output.class_mix", "output.boxes", "quality.resolution",
        "quality.compression", "output.new_classes", "quality.tile_brightness",
        "quality.tile_sharpness", "quality.frozen", "quality.vignetting",
        "performance.error"}
    path = tmp_path / "cam.json"
    write_bundle(exported.bundle, path)
    bundle = read_bundle(path)

    warmed = StreamMonitor("cam", "v1", SETTINGS)
    a = [(x.signal, x.detected_index) for x in run(warmed, events)]
    fresh = monitor_from_bundle(bundle, SETTINGS)
    assert fresh.signals["quality.brightness"].status == "ok"  # calibrated before any event
    b = [(x.signal, x.detected_index) for x in run(fresh, events[REF:])]
    assert a == [("quality.brightness", 1005)]  # pinned
    assert b == [("quality.brightness", 1005 - REF)]


def test_replay_and_the_cli_honour_reference_path(events, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("DRIFTLINE_")]:
        monkeypatch.delenv(name)
    rec, shifted, out = tmp_path / "clean.jsonl", tmp_path / "shifted.jsonl", tmp_path / "b"
    rec.write_bytes(b"\n".join(_lines(events[:REF])) + b"\n")
    shifted.write_bytes(b"\n".join(_lines(events[REF:])) + b"\n")
    env = {"DRIFTLINE_MONITOR__REFERENCE_SIZE": "200", "DRIFTLINE_MONITOR__COOLDOWN": "100"}
    runner = CliRunner()
    res = runner.invoke(app, ["reference", "export", str(rec), "--stream", "cam",
                              "--out", str(out / "cam.json")], env=env)
    assert res.exit_code == 0, res.output
    assert "calibrated signals from 450 events" in res.output

    # The library path: a registry with reference_path starts the stream from the bundle.
    settings = MonitorSettings(reference_size=200, cooldown=100, reference_path=out)
    fired = [f for f in replay_lines(_lines(events[REF:]), monitor=settings)
             if isinstance(f, Fired)]
    assert [(f.index, f.alert.signal) for f in fired] == [(1005 - REF, "quality.brightness")]

    res = runner.invoke(app, ["replay", str(shifted)],
                        env={**env, "DRIFTLINE_MONITOR__REFERENCE_PATH": str(out)})
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(x["index"], x["alert"]["signal"]) for x in lines] == [(555, "quality.brightness")]


def test_export_refuses_a_recording_with_a_change(events):
    with pytest.raises(RecordingNotClean, match=r"quality.brightness alerted at event #1005"):
        export_reference(_lines(events), stream_id="cam", monitor=SETTINGS)


def test_export_needs_events_of_the_stream_and_a_calibrated_signal(events):
    with pytest.raises(ValueError, match="no event of stream 'other'"):
        export_reference(_lines(events[:10]), stream_id="other", monitor=SETTINGS)
    with pytest.raises(ValueError, match="no signal of 'cam' calibrated over its 10 events"):
        export_reference(_lines(events[:10]), stream_id="cam", monitor=SETTINGS)


# -- commands -----------------------------------------------------------------------


def test_a_command_rereferences_every_version_of_the_stream(warm):
    reg = MonitorRegistry(SETTINGS)
    reg.monitors[("cam", "v1")] = _copy(warm)
    reg.monitors[("cam", "v2")] = _copy(warm, model_version="v2")
    reg.monitors[("cam-2", "v1")] = _copy(warm, stream_id="cam-2")
    done = apply_command(reg, Command(stream_id="cam", action="rereference",
                                      signals=["quality.noise"]))
    assert sorted((m.model_version, names) for m, names in done) == [
        ("v1", ["quality.noise"]), ("v2", ["quality.noise"])]
    assert reg.monitors[("cam-2", "v1")].signals["quality.noise"].status == "ok"
    # A named version without a monitor (and no bundle) is not created.
    assert apply_command(
        reg, Command(stream_id="cam", action="rereference", model_version="v9")) == []
    assert ("cam", "v9") not in reg.monitors


def test_a_command_naming_an_unknown_signal_is_invalid_even_without_a_monitor():
    with pytest.raises(InvalidEvent) as info:
        apply_command(MonitorRegistry(SETTINGS),
                      Command(stream_id="x", action="rereference", signals=["nope"]))
    assert info.value.reason == "unknown_signal"
    assert "known signals" in str(info.value)


def test_replay_applies_command_lines_in_order(events):
    reg = MonitorRegistry(SETTINGS)
    cmd = Command(stream_id="cam", action="rereference", model_version="v1",
                  signals=["quality.brightness"])
    list(replay_lines([*_lines(events[:REF]), encode(cmd)], registry=reg))
    assert reg.monitors[("cam", "v1")].signals["quality.brightness"].status == "warming_up"


def test_rereference_cli_refuses_an_unknown_signal_before_publishing():
    res = CliRunner().invoke(app, ["rereference", "cam", "--signal", "quality.brightnes"])
    assert res.exit_code == 2
    assert "known signals" in res.output
