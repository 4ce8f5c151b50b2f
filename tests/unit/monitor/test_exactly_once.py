"""Input positions in the checkpoint: an event read again changes its stream once.

The worker passes each event's position (``"<topic>:<partition>"``, offset);
these tests use the router and registry directly, with made-up positions,
and check what a crash-restart would do: restore a snapshot that is ahead of
the offset reading resumes from, read the gap again.
"""

from __future__ import annotations

from driftline.settings import MonitorSettings
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.router import Router, Source
from schemas.events import Command
from schemas.wire import encode
from tests.unit.test_monitor import camera_like

SETTINGS = MonitorSettings(reference_size=50, cooldown=50, embedding_dim=32)


def _lines(n: int, shift_at: int = 300) -> list[bytes]:
    return [encode(e) for e in camera_like(n, seed=7, shift_at=shift_at)]


def _run(router: Router, lines: list[bytes], start: int, stop: int) -> list[str]:
    ids = []
    for off in range(start, stop):
        routed = router.route(lines[off], Source.INPUTS, ("t.embeddings:0", off))
        ids += [a.alert_id for a in routed.alerts]
    return ids


def test_a_restart_behind_the_snapshot_skips_what_the_snapshot_holds():
    lines = _lines(500)
    straight = Router(MonitorRegistry(SETTINGS))
    expected = _run(straight, lines, 0, 500)
    assert expected, "the recording must alert"

    # Snapshot after offset 319 (alerted by then), crash, resume reading at 200.
    first = Router(MonitorRegistry(SETTINGS))
    before = _run(first, lines, 0, 320)
    snap = first.registry.monitors[("cam", "v1")].snapshot()
    again = Router(MonitorRegistry(SETTINGS))
    again.registry.restore(snap)
    skipped = [again.route(lines[o], Source.INPUTS, ("t.embeddings:0", o)).skipped
               for o in range(200, 320)]
    assert all(skipped)
    after = _run(again, lines, 320, 500)
    mon = again.registry.monitors[("cam", "v1")]
    assert mon.events_seen == 500
    assert before + after == expected
    assert mon.state() == straight.registry.monitors[("cam", "v1")].state()


def test_a_snapshot_taken_during_the_pca_warm_up_continues_exactly():
    lines = _lines(300, shift_at=150)
    straight = Router(MonitorRegistry(SETTINGS))
    expected = _run(straight, lines, 0, 300)
    first = Router(MonitorRegistry(SETTINGS))
    before = _run(first, lines, 0, 20)  # 20 of the 50 warm-up vectors
    again = Router(MonitorRegistry(SETTINGS))
    again.registry.restore(first.registry.monitors[("cam", "v1")].snapshot())
    assert before + _run(again, lines, 0, 300) == expected
    assert (again.registry.monitors[("cam", "v1")].state()
            == straight.registry.monitors[("cam", "v1")].state())


def test_positions_are_per_input_and_survive_the_checkpoint():
    mon = StreamMonitor("cam", "v1", SETTINGS)
    mon.mark(("a:0", 5))
    mon.mark(("a:0", 3))  # never backwards
    mon.mark(("b:1", 9))
    back = StreamMonitor.from_state(mon.state())
    assert back.positions == {"a:0": 5, "b:1": 9}
    assert back.applied(("a:0", 5)) and not back.applied(("a:0", 6))
    assert not back.applied(("c:0", 0))


def test_a_command_read_again_is_not_applied_twice():
    lines = _lines(120)
    router = Router(MonitorRegistry(SETTINGS))
    _run(router, lines, 0, 120)
    cmd = encode(Command(command_id="c1", stream_id="cam", action="rereference",
                         signals=["quality.brightness"]))
    first = router.route(cmd, Source.CONTROL, ("t.control:0", 4))
    assert [names for _, names in first.applied] == [["quality.brightness"]]
    mon = router.registry.monitors[("cam", "v1")]
    assert mon.signals["quality.brightness"].status == "warming_up"
    state = mon.state()
    again = router.route(cmd, Source.CONTROL, ("t.control:0", 4))
    assert again.skipped and not again.applied
    assert mon.state() == state


def test_an_evicted_monitor_comes_back_as_it_left():
    lines = _lines(400)
    straight = Router(MonitorRegistry(SETTINGS))
    expected = _run(straight, lines, 0, 400)
    router = Router(MonitorRegistry(SETTINGS))
    got = []
    for start in range(0, 400, 37):
        got += _run(router, lines, start, min(start + 37, 400))
        router.registry.evict(("cam", "v1"))
        assert not router.registry.monitors
    assert got == expected
    back = router.registry.get("cam", "v1")
    assert back.state() == straight.registry.monitors[("cam", "v1")].state()
    # Read again while evicted: skipped, and the monitor stays as it was.
    router.registry.evict(("cam", "v1"))
    assert router.route(lines[10], Source.INPUTS, ("t.embeddings:0", 10)).skipped


def test_a_command_reaches_evicted_monitors_of_its_stream():
    router = Router(MonitorRegistry(SETTINGS))
    _run(router, _lines(120), 0, 120)
    router.registry.evict(("cam", "v1"))
    cmd = encode(Command(command_id="c2", stream_id="cam", action="rereference",
                         signals=["quality.brightness"]))
    routed = router.route(cmd, Source.CONTROL, ("t.control:0", 1))
    assert [(m.stream_id, names) for m, names in routed.applied] == [
        ("cam", ["quality.brightness"])]
