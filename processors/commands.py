"""Operator commands (the control topic's ``Command`` events): signed, verified, applied.

Commands are applied by whoever owns the stream's monitor -- the worker
between that stream's events, replay at that line of the recording -- both
through ``processors.router``. No Kafka here.

Authentication. Whoever can write to ``<prefix>.control`` could otherwise keep
a stream re-referencing and hide every drift. With
``DRIFTLINE_CONTROL_SECRET`` set, the CLI signs each command (``sign_command``:
HMAC-SHA256 over the command's canonical JSON without its signature, which
includes its ``ts``) and the worker's router verifies it (``ControlAuth``):

- ``unsigned_command``: no signature;
- ``bad_signature``: the signature does not match (another secret, a changed field);
- ``stale_command``: ``ts`` further than ``max_age_s`` from the worker's clock;
- ``replayed_command``: a ``command_id`` this worker has already applied.

Each is a ``PermanentError``: the command is dead-lettered, nothing changes.
Without a secret every command is applied, and ``ControlAuth.from_settings``
logs a warning once at start-up.

Examples
--------
>>> from datetime import datetime, timezone
>>> cmd = Command(stream_id="cam-1", action="rereference", command_id="c1",
...               ts=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> signed = sign_command(cmd, "0123456789abcdef")
>>> signed.signature
'v1,...'
>>> auth = ControlAuth("0123456789abcdef", max_age_s=60)
>>> auth.verify(signed, now=datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc))
>>> auth.verify(cmd, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
Traceback (most recent call last):
...
processors.commands.CommandRejected: command c1 is not signed (DRIFTLINE_CONTROL_SECRET is set)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from driftline.errors import ConfigError, InvalidEvent, PermanentError
from processors.monitor import RETRAIN_SIGNAL, MonitorRegistry, StreamMonitor
from processors.monitor.catalogue import CALIBRATED
from schemas.events import Alert, Command, CommandAction, utcnow

if TYPE_CHECKING:
    from driftline.settings import Settings

log = logging.getLogger("driftline.commands")

SIGNATURE_VERSION = "v1"
DEFAULT_MAX_AGE_S = 900.0
REMEMBERED_COMMANDS = 10_000


class CommandRejected(PermanentError):
    """A command that failed authentication; ``reason`` says how."""

    reason = "bad_signature"


def control_key(secret: str | bytes) -> bytes:
    """HMAC key: base64-decoded after ``whsec_`` (as for webhooks), else UTF-8 bytes.

    >>> control_key("whsec_aGVsbG8="), control_key("plain")
    (b'hello', b'plain')
    """
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("DRIFTLINE_CONTROL_SECRET", "whsec_ secret is not base64") from exc
    return secret.encode()


def canonical_bytes(command: Command) -> bytes:
    """What is signed: the command's JSON without ``signature``, keys sorted, compact.

    Derived from the decoded model, not the received bytes, so whitespace or
    key order on the wire does not matter, while every field does (defaults
    included: a field left out is filled in and no longer matches).
    """
    doc = command.model_dump(mode="json", exclude={"signature"})
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(secret: str | bytes, command: Command) -> str:
    digest = hmac.new(control_key(secret), canonical_bytes(command), hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode()


def sign_command(command: Command, secret: str | bytes) -> Command:
    """``command`` with its ``signature`` set (a fresh ``ts`` is the caller's choice)."""
    return command.model_copy(update={"signature": _mac(secret, command)})


class ControlAuth:
    """Verifies commands against one secret (see the module docstring).

    ``max_age_s`` bounds both a command's age and a clock running ahead. It
    must exceed how long a worker may be down: commands re-read after a
    crash (offsets not yet committed) are checked again.
    """

    def __init__(self, secret: str | bytes, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.secret = control_key(secret)
        self.max_age_s = max_age_s
        self._seen: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> ControlAuth | None:
        """The worker's verifier, or ``None`` (and a warning, once) without a secret."""
        if settings.control_secret is None:
            log.warning(
                "control is unauthenticated: anyone who can write to %s can re-reference "
                "(silence) a stream; set DRIFTLINE_CONTROL_SECRET", settings.topics.control)
            return None
        return cls(settings.control_secret.get_secret_value(),
                   max_age_s=settings.control_max_age_s)

    def verify(self, command: Command, *, now: datetime | None = None) -> None:
        """Return if ``command`` may be applied; raise ``CommandRejected`` otherwise."""
        cid = command.command_id
        if not command.signature:
            raise CommandRejected(
                f"command {cid} is not signed (DRIFTLINE_CONTROL_SECRET is set)",
                reason="unsigned_command")
        expected = _mac(self.secret, command)
        if not any(hmac.compare_digest(sig.encode(), expected.encode())
                   for sig in command.signature.split()):
            raise CommandRejected(f"command {cid}: signature does not match",
                                  reason="bad_signature")
        age = ((now or utcnow()) - command.ts).total_seconds()
        if abs(age) > self.max_age_s:
            raise CommandRejected(
                f"command {cid} is {age:.0f}s old (at most {self.max_age_s:.0f}s either way)",
                reason="stale_command")
        if cid in self._seen:
            raise CommandRejected(f"command {cid} was already applied",
                                  reason="replayed_command")
        self._seen[cid] = None
        if len(self._seen) > REMEMBERED_COMMANDS:
            self._seen.popitem(last=False)


def build_command(
    stream_id: str, action: CommandAction, *, secret: str | bytes | SecretStr | None = None,
    **fields: Any,
) -> Command:
    """A new ``Command`` (fresh ``command_id`` and ``ts``), signed when ``secret`` is given.

    ``fields``: any other ``Command`` field (``signals``, ``until``,
    ``false_alarms_per_week``, ``reason``, ``alert_id``, ``requested_by``,
    ``model_version``). What the CLI and the HTTP API publish.

    Raises
    ------
    pydantic.ValidationError
        A field the action needs is missing (``snooze`` without ``until``) or wrong.

    Examples
    --------
    >>> cmd = build_command("cam-1", "set_budget", false_alarms_per_week=2.0,
    ...                     requested_by="ops", secret="0123456789abcdef")
    >>> cmd.action, cmd.false_alarms_per_week, cmd.signature.startswith("v1,")
    ('set_budget', 2.0, True)
    >>> ControlAuth("0123456789abcdef").verify(cmd)
    >>> build_command("cam-1", "ack", alert_id="a1").signature is None
    True
    """
    command = Command(stream_id=stream_id, action=action, **fields)
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return sign_command(command, secret) if secret else command


def _check_signals(command: Command) -> None:
    known = StreamMonitor.known_signals()
    if command.action != "rereference":  # the retrain advice can be snoozed, acked...
        known = [*known, RETRAIN_SIGNAL]
    unknown = [s for s in command.signals or [] if s not in known]
    if unknown:
        raise InvalidEvent(
            f"command {command.command_id}: unknown signal(s) "
            f"{', '.join(map(repr, unknown))}; known signals: {', '.join(known)}",
            reason="unknown_signal",
        )


def control_monitor(mon: StreamMonitor, command: Command) -> tuple[list[str], list[Alert]]:
    """Apply ``command`` to one monitor: the signals it re-referenced, the alerts it emits.

    See ``processors.monitor.controls`` for what each action does.

    Raises
    ------
    ValueError
        ``rereference`` of a signal this monitor does not have.
    """
    names = list(command.signals) if command.signals else [*mon.signals, RETRAIN_SIGNAL]
    if command.action == "rereference":
        done = mon.rereference(command.signals)  # raises before anything is recorded
        mon.controls.record(command, names)
        return done, []
    events: list[Alert] = []
    was_disabled = [n for n in names if n in mon.controls.disabled]
    mon.controls.record(command, names)
    again: list[str] = []
    if command.action == "ack":
        events = mon.controls.acknowledge(command, names)
        again = [*(command.signals or []), *(e.signal for e in events)]
    elif command.action == "enable":  # only what was disabled: the rest kept watching
        again = was_disabled
    elif command.action == "set_budget":
        ert_each = mon.ert * len(CALIBRATED)
        for sig in mon.signals.values():
            sig.ert = ert_each
        again = [n for n, sig in mon.signals.items() if sig.detector is not None]
    again = [n for n in dict.fromkeys(again) if n in mon.signals]
    return (mon.rereference(again) if again else []), events


def apply_command_events(
    registry: MonitorRegistry, command: Command
) -> tuple[list[tuple[StreamMonitor, list[str]]], list[Alert]]:
    """``apply_command``, and the alert lifecycle events the command caused (an ``ack``)."""
    _check_signals(command)
    if command.model_version is None:
        targets = [m for (sid, _), m in registry.monitors.items() if sid == command.stream_id]
    else:
        key = (command.stream_id, command.model_version)
        exists = key in registry.monitors or key in registry.references
        targets = [registry.get(*key)] if exists else []
    out = []
    events: list[Alert] = []
    for mon in targets:
        try:
            names, emitted = control_monitor(mon, command)
        except ValueError as exc:  # a monitor restored from an older build's signal table
            raise InvalidEvent(str(exc), reason="unknown_signal") from exc
        out.append((mon, names))
        events += emitted
    return out, events


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
    return apply_command_events(registry, command)[0]
