"""Operator commands (the control topic's ``Command`` events), applied to a registry.

Commands are applied by whoever owns the stream's monitor -- the worker
between that stream's events, replay at that line of the recording -- both
through ``processors.router``. No Kafka here.
"""

from __future__ import annotations

from driftline.errors import InvalidEvent
from processors.monitor import MonitorRegistry, StreamMonitor
from schemas.events import Command


def apply_command(
    registry: MonitorRegistry, command: Command
) -> list[tuple[StreamMonitor, list[str]]]:
    """Apply an operator command; return each monitor changed and its re-referenced signals.

    ``model_version`` None: every monitor of the stream the registry holds.
    A named version without a monitor gets one only if it has a reference
    bundle (re-referencing then means "from live data, not the bundle");
    otherwise a new monitor warms up anyway, and creating one for a misspelt
    stream would publish snapshots of a stream that does not exist.

    Raises
    ------
    InvalidEvent
        ``unknown_signal``: a signal this build does not watch -- checked
        before anything changes and whether or not a monitor exists, so a
        bad command is dead-lettered the same way on every worker.
    """
    known = StreamMonitor.known_signals()
    unknown = [s for s in command.signals or [] if s not in known]
    if unknown:
        raise InvalidEvent(
            f"command {command.command_id}: unknown signal(s) "
            f"{', '.join(map(repr, unknown))}; known signals: {', '.join(known)}",
            reason="unknown_signal",
        )
    if command.model_version is None:
        targets = [m for (sid, _), m in registry.monitors.items() if sid == command.stream_id]
    else:
        key = (command.stream_id, command.model_version)
        exists = key in registry.monitors or key in registry.references
        targets = [registry.get(*key)] if exists else []
    out = []
    for mon in targets:
        try:
            out.append((mon, mon.rereference(command.signals)))
        except ValueError as exc:  # a monitor restored from an older build's signal table
            raise InvalidEvent(str(exc), reason="unknown_signal") from exc
    return out
