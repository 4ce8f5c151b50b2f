"""The operator's controls on the command line: one command per ``Command`` action, and the fleet.

``driftline ack | snooze | unsnooze | disable | enable | rereference |
set-budget`` each publish one ``Command`` on ``<prefix>.control`` (signed
with ``DRIFTLINE_CONTROL_SECRET`` when it is set) and print one JSON line
once the broker has it; the worker that owns the stream applies it in order
with the stream's events and records it (who: ``--by``, why: ``--reason``,
when: the command's ``ts``) in the stream's snapshot. What each does:
``processors/monitor/controls.py``. ``driftline streams`` prints the fleet
as Redis holds it (the sinks write it), one JSON line per stream.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from driftline.errors import ConfigError
from driftline.settings import Settings, load_settings

if TYPE_CHECKING:
    from schemas.events import CommandAction

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``2h``, ``30m``, ``1h30m``, ``90s``, ``1d``, ``1w`` as a duration (> 0).

    >>> parse_duration("2h"), parse_duration("1h30m").total_seconds()
    (datetime.timedelta(seconds=7200), 5400.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    ValueError: 'soon' is not a duration like 2h, 30m, 1h30m, 90s, 1d
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise ValueError(f"{text!r} is not a duration like 2h, 30m, 1h30m, 90s, 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


def cli_settings() -> Settings:
    """The settings, or exit 2 with one line naming the bad setting (every command)."""
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _check_signals(signals: list[str] | None, action: str) -> None:
    from processors.monitor import RETRAIN_SIGNAL, StreamMonitor

    known = StreamMonitor.known_signals()
    if action == "rereference" and RETRAIN_SIGNAL in (signals or []):
        typer.echo(f"{RETRAIN_SIGNAL} has no reference to rebuild (it compares the deployed "
                   f"model with a head retrained on live labels): acknowledge it with "
                   f"`driftline ack STREAM {RETRAIN_SIGNAL}`", err=True)
        raise typer.Exit(2)
    if action != "rereference":
        known = [*known, RETRAIN_SIGNAL]
    unknown = [s for s in signals or [] if s not in known]
    if unknown:
        typer.echo(f"unknown signal(s) {', '.join(unknown)}; known signals: {', '.join(known)}",
                   err=True)
        raise typer.Exit(2)


def send(settings: Settings, stream: str, action: CommandAction, **fields: Any) -> dict[str, Any]:
    """Build, sign and publish one command; the JSON line the CLI prints for it."""
    from driftline.service_log import require_broker
    from processors.commands import build_command
    from producers.control import publish_command

    try:
        command = build_command(stream, action, secret=settings.control_secret, **fields)
    except ValueError as exc:  # pydantic: a field the action needs, a budget <= 0
        typer.echo(f"invalid command: {exc}", err=True)
        raise typer.Exit(2) from None
    # One line when the broker is down, not a delivery timeout 30 s later.
    require_broker(settings.bootstrap_servers, settings.kafka_client_options())
    publish_command(settings, command)
    doc = command.model_dump(mode="json", exclude={"kind", "schema_version", "signature"},
                             exclude_none=True)
    return {"command_id": doc.pop("command_id"), **doc}


def _echo(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc))


Stream = Annotated[str, typer.Argument(help="The stream (camera) id.")]
Signals = Annotated[list[str] | None, typer.Argument(
    help="Signals (default: every signal of the stream).", show_default=False)]
ModelVersion = Annotated[str | None, typer.Option(
    help="Only this model version (default: every version of the stream).")]
By = Annotated[str | None, typer.Option(help="Who asks (default: the user).")]
Reason = Annotated[str, typer.Option(help="Why (recorded with the control).")]


def register(app: typer.Typer) -> None:
    """Add the control commands and ``streams`` to ``app``."""

    @app.command()
    def rereference(
        stream: Stream,
        model_version: ModelVersion = None,
        signal: Annotated[list[str] | None, typer.Option(
            "--signal", help="Signal to re-reference (repeatable; default: all).")] = None,
        by: By = None,
        reason: Reason = "",
    ) -> None:
        """Re-reference STREAM: its signals rebuild their reference from the next events."""
        settings = cli_settings()
        _check_signals(signal, "rereference")
        _echo(send(settings, stream, "rereference", model_version=model_version,
                   signals=signal or None, requested_by=by or _operator(), reason=reason))

    @app.command()
    def ack(
        stream: Stream,
        signal: Annotated[str | None, typer.Argument(
            help="The signal (default: every open alert of the stream).")] = None,
        model_version: ModelVersion = None,
        alert_id: Annotated[str | None, typer.Option(help="Only this alert.")] = None,
        by: By = None,
        reason: Reason = "",
    ) -> None:
        """Acknowledge STREAM's open alerts (of SIGNAL); the signal re-references.

        The alerts become `acknowledged` on the alert topic; the ack is also
        written to Redis (`driftline state`).
        """
        from driftline.service_log import require_redis
        from sinks.redis_state import acknowledge, list_streams

        settings = cli_settings()
        _check_signals([signal] if signal else None, "ack")
        require_redis(settings.redis_url)
        streams = list_streams(settings.redis_url, namespace=settings.topic_prefix)
        if stream not in streams:
            typer.echo(f"unknown stream {stream!r}: Redis has no state for it (known: "
                       f"{', '.join(streams[:20]) or 'none'}); check the id, or that "
                       "`driftline sinks` runs", err=True)
            raise typer.Exit(1)
        who = by or _operator()
        out = send(settings, stream, "ack", model_version=model_version,
                   signals=[signal] if signal else None, alert_id=alert_id, requested_by=who,
                   reason=reason)
        if signal is not None:
            # Command first, then the ack that names it: an ack in Redis always
            # means the command was delivered to the broker.
            acknowledge(settings.redis_url, stream, signal, alert_id=alert_id, by=who,
                        command_id=out["command_id"], namespace=settings.topic_prefix)
        _echo(out)

    @app.command()
    def snooze(
        stream: Stream,
        signals: Signals = None,
        for_: Annotated[str, typer.Option(
            "--for", help="How long (event time), e.g. 30m, 2h, 1d.")] = "1h",
        model_version: ModelVersion = None,
        by: By = None,
        reason: Reason = "",
    ) -> None:
        """Snooze SIGNALS of STREAM: they keep updating, their alerts do not notify."""
        from schemas.events import utcnow

        settings = cli_settings()
        _check_signals(signals, "snooze")
        try:
            span = parse_duration(for_)
        except ValueError as exc:
            typer.echo(f"--for: {exc}", err=True)
            raise typer.Exit(2) from None
        now = utcnow()
        _echo(send(settings, stream, "snooze", model_version=model_version,
                   signals=signals or None, until=now + span, ts=now,
                   requested_by=by or _operator(), reason=reason))

    def simple(action: CommandAction, doc: str) -> None:
        def command(
            stream: Stream,
            signals: Signals = None,
            model_version: ModelVersion = None,
            by: By = None,
            reason: Reason = "",
        ) -> None:
            settings = cli_settings()
            _check_signals(signals, action)
            _echo(send(settings, stream, action, model_version=model_version,
                       signals=signals or None, requested_by=by or _operator(),
                       reason=reason))

        command.__doc__ = doc
        app.command(action)(command)

    simple("unsnooze", "End a snooze of SIGNALS of STREAM.")
    simple("disable", "Stop monitoring SIGNALS of STREAM (their values are ignored).")
    simple("enable", "Monitor SIGNALS of STREAM again (they re-reference first).")

    @app.command("set-budget")
    def set_budget(
        stream: Stream,
        false_alarms_per_week: Annotated[float, typer.Option(
            help="False alarms a week, all signals together (> 0).")],
        model_version: ModelVersion = None,
        by: By = None,
        reason: Reason = "",
    ) -> None:
        """Set STREAM's false-alarm budget: every calibrated signal recalibrates to it."""
        settings = cli_settings()
        _echo(send(settings, stream, "set_budget", model_version=model_version,
                   false_alarms_per_week=false_alarms_per_week,
                   requested_by=by or _operator(), reason=reason))

    @app.command()
    def streams() -> None:
        """The fleet as Redis holds it: one JSON line per stream.

        Status, last event time, signals in drift, open alerts, snoozed and
        disabled signals.
        """
        from sinks.alert_lifecycle import fleet

        settings = cli_settings()
        for row in fleet(settings.redis_url, namespace=settings.topic_prefix):
            typer.echo(json.dumps(row))
