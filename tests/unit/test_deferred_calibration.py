"""A process pool gives the alerts of inline calibration (processors.calibration_pool).

The worker defers each signal's calibration to child processes and installs
the result before the stream's next event; replay calibrates inline. These
tests run both on the same seeded streams (edge predictions, whose
``output.class_mix`` calibrates a MixCusum) and compare alert ids, indices,
thresholds and the monitors' checkpoints; a request pending in a checkpoint,
a child that dies, and the setting are covered too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.errors import ConfigError
from driftline.settings import MonitorSettings, Settings, load_settings
from processors.calibration_pool import CalibrationPool, Calibrations
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.signal_tracker import ScalarSignal, calibrate
from schemas.events import Alert, Prediction

SETTINGS = MonitorSettings(reference_size=60, class_mix_reference_size=200, cooldown=60,
                           min_duration=2.0, global_min_duration=1.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["car", "bus", "person", "bicycle"]


def edge_stream(stream: str, n: int, *, seed: int, shift_at: int) -> list[Prediction]:
    """Edge predictions at 10/s: AR(1) confidence, a sticky class mix, 16-d embeddings.

    From ``shift_at`` the embeddings move and half the predictions are ``bicycle``.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(size=16) + 3.0
    away = rng.normal(size=16) * 2.0
    z, cls, out = 0.0, "car", []
    for i in range(n):
        z = 0.85 * z + rng.normal() * np.sqrt(1 - 0.85**2)
        conf = float(np.clip(0.7 + 0.05 * z, 0.05, 0.99))
        if rng.random() < 0.2:
            cls = str(rng.choice(CLASSES[:3], p=[0.6, 0.1, 0.3]))
        top = "bicycle" if i >= shift_at and rng.random() < 0.5 else cls
        vec = base + 0.3 * rng.normal(size=16) + (away if i >= shift_at else 0.0)
        out.append(Prediction(
            event_id=f"{stream}-{i}", stream_id=stream, model_version="v1", frame_index=i,
            ts=T0 + timedelta(seconds=i / 10), top_class=top, confidence=conf,
            scores={top: conf, "other": 1 - conf}, embedding=vec.tolist()))
    return out


def interleaved(streams: int = 2, n: int = 600) -> list[Prediction]:
    """Several streams' events, round robin (as a partition carries them)."""
    each = [edge_stream(f"cam-{s}", n, seed=10 + s, shift_at=330 + 20 * s)
            for s in range(streams)]
    return [e for group in zip(*each, strict=True) for e in group]


def fingerprint(alerts: list[Alert]) -> list[tuple]:
    return [(a.alert_id, a.signal, a.detector, a.detected_index, a.change_index, a.threshold,
             a.statistic, a.message) for a in alerts]


def run_inline(events: list[Prediction]) -> tuple[list[Alert], MonitorRegistry]:
    reg = MonitorRegistry(SETTINGS)
    alerts = [a for e in events for a in reg.observe(e)[1]]
    return alerts, reg


async def run_deferred(events: list[Prediction], calibrations: Calibrations,
                       registry: MonitorRegistry | None = None,
                       ) -> tuple[list[Alert], MonitorRegistry]:
    """As the worker's ``apply_batch``: settle the stream, apply, submit the new requests."""
    reg = registry or MonitorRegistry(SETTINGS, deferred=True)
    alerts = []
    for e in events:
        await calibrations.settle(e.stream_id)
        mon, fired = reg.observe(e)
        alerts += fired
        calibrations.submit([mon])
    for stream in {e.stream_id for e in events}:
        await calibrations.settle(stream)
    return alerts, reg


def checkpoints(reg: MonitorRegistry) -> dict:
    return {k: json.loads(json.dumps(m.state())) for k, m in sorted(reg.monitors.items())}


@pytest.fixture(scope="module")
def events() -> list[Prediction]:
    return interleaved()


@pytest.fixture(scope="module")
def inline(events):
    return run_inline(events)


@pytest.fixture(scope="module")
def pool():
    p = CalibrationPool(1)
    yield p
    p.close()


def test_inline_alerts_fire_on_these_streams(inline):
    alerts, reg = inline
    signals = {a.signal for a in alerts}
    # The streams exercise the MixCusum of output.class_mix and the edge signals.
    assert "output.class_mix" in signals and any(s.startswith("edge.") for s in signals)
    assert all(m.signals["output.class_mix"].detector is not None
               or m.signals["output.class_mix"].status == "drift"
               for m in reg.monitors.values())


def test_the_pool_gives_the_alerts_and_checkpoints_of_inline_calibration(events, inline, pool):
    calibrations = Calibrations(pool)
    alerts, reg = asyncio.run(run_deferred(events, calibrations))
    assert fingerprint(alerts) == fingerprint(inline[0])
    assert checkpoints(reg) == checkpoints(inline[1])
    assert calibrations.inline == 0 and calibrations.in_flight == 0


def test_without_a_result_the_signal_calibrates_inline_before_its_next_value(events, inline):
    # Nobody installs: each pending signal calibrates itself on its next value.
    reg = MonitorRegistry(SETTINGS, deferred=True)
    alerts = [a for e in events for a in reg.observe(e)[1]]
    assert fingerprint(alerts) == fingerprint(inline[0])


def test_a_pending_request_survives_a_checkpoint(events, inline, pool):
    first = [e for e in events if e.stream_id == "cam-0"]
    reg = MonitorRegistry(SETTINGS, deferred=True)
    cut = next(i for i, e in enumerate(first) if reg.observe(e)[0].calibrations())
    mon = reg.monitors[("cam-0", "v1")]
    pending = mon.calibrations()
    # The checkpoint holds the full reference and no detector ...
    state = json.loads(json.dumps(mon.state()))
    for request in pending:
        sig = state["signals"][request.signal]
        assert sig["detector"] is None and len(sig["reference"]) == sig["reference_size"]
    # ... and a restored signal builds the same request from it.
    restored = StreamMonitor.from_state(state)
    again = {r.signal: r for r in restored.calibrations()}
    for request in pending:
        twin = again[request.signal]
        assert np.array_equal(twin.reference, request.reference)
        assert (twin.ert, twin.seed, twin.tolerance, twin.token) == (
            request.ert, request.seed, request.tolerance, request.token)
    # Continued: restored with the pool (deferred), and restored inline: both as if never cut.
    rest = first[cut + 1:]
    reg2 = MonitorRegistry(SETTINGS, deferred=True)
    reg2.restore(mon.snapshot())
    calibrations = Calibrations(pool)
    calibrations.submit(reg2.monitors.values())
    assert calibrations.in_flight == len(pending)
    tail, reg2 = asyncio.run(run_deferred(rest, calibrations, reg2))
    reg3 = MonitorRegistry(SETTINGS)
    reg3.restore(mon.snapshot())
    tail3 = [a for e in rest for a in reg3.observe(e)[1]]
    whole = [a for a in inline[0] if a.stream_id == "cam-0" and a.detected_index > cut]
    assert fingerprint(tail) == fingerprint(tail3) == fingerprint(whole)
    assert checkpoints(reg2) == checkpoints(reg3) == {
        k: v for k, v in checkpoints(inline[1]).items() if k[0] == "cam-0"}


def test_a_result_for_a_reference_the_signal_dropped_is_refused():
    rng = np.random.default_rng(5)
    sig = ScalarSignal("demo", "cusum", ert=1e4, reference_size=50, cooldown=10, seed=1,
                       tolerance=(0.0, 0.1), track=0.01)
    sig.defer()
    for i in range(50):
        sig.update(float(rng.normal()), i)
    request = sig.pending_calibration()
    assert request is not None and sig.detector is None and len(sig.reference) == 50
    old = calibrate(request)
    sig.rereference()  # an operator's command while the pool computes
    assert not sig.install(old) and sig.detector is None and sig.pending_calibration() is None
    for i in range(50, 100):
        sig.update(float(rng.normal()), i)
    assert not sig.install(old)  # another reference now
    fresh = sig.pending_calibration()
    assert fresh is not None and sig.install(calibrate(fresh))
    assert sig.detector is not None and sig.slow is not None and sig.reference == []


def test_a_dead_child_falls_back_to_inline_and_the_pool_is_recreated(events, inline):
    pool = CalibrationPool(1)
    try:
        calibrations = Calibrations(pool)
        pool.submit(_any_request(events)).result(timeout=60)  # the child is up
        executor = pool._pool()
        for proc in list(executor._processes.values()):  # a real child, killed
            proc.kill()
        deadline = time.monotonic() + 30
        while not executor._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executor._broken
        one = [e for e in events if e.stream_id == "cam-0"]
        alerts, reg = asyncio.run(run_deferred(one, calibrations))
        assert fingerprint(alerts) == fingerprint([a for a in inline[0] if a.stream_id == "cam-0"])
        assert checkpoints(reg) == {
            k: v for k, v in checkpoints(inline[1]).items() if k[0] == "cam-0"}
        assert calibrations.inline >= 1 and pool.restarts == 1
        # The new pool computes again.
        assert pool.submit(_any_request(events)).result(timeout=60).detector is not None
    finally:
        pool.close()


def _any_request(events):
    reg = MonitorRegistry(SETTINGS, deferred=True)
    for e in events:
        if requests := reg.observe(e)[0].calibrations():
            return requests[0]
    raise AssertionError("no calibration request")


def test_the_pool_leaves_no_orphan_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        from processors.calibration_pool import CalibrationPool

        def pids():
            return list(pool._pool()._processes)

        if __name__ == "__main__":
            pool = CalibrationPool(1)
            pool._pool().submit(time.sleep, 0).result(timeout=60)
            print(" ".join(map(str, pids())), flush=True)
            os.kill(os.getpid(), 9)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    children = [int(p) for p in out.stdout.split()]
    assert children, out.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.1)
    assert not any(_alive(p) for p in children)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_calibration_workers_setting(monkeypatch):
    assert 1 <= Settings().calibration_workers <= 4
    assert Settings(calibration_workers=0).calibration_workers == 0
    monkeypatch.setenv("DRIFTLINE_CALIBRATION_WORKERS", "-1")
    with pytest.raises(ConfigError, match="DRIFTLINE_CALIBRATION_WORKERS"):
        load_settings()
    monkeypatch.setenv("DRIFTLINE_CALIBRATION_WORKERS", "two")
    with pytest.raises(ConfigError, match="DRIFTLINE_CALIBRATION_WORKERS"):
        load_settings()
    with pytest.raises(ValueError, match="at least 1"):
        CalibrationPool(0)
