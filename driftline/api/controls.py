"""Operator controls from the API: a ``Command`` on ``<prefix>.control``, signed, delivered.

Each control the page or a client posts becomes one ``Command`` keyed by its
stream (so the worker that owns the stream applies it between the stream's
events), built and signed with ``DRIFTLINE_CONTROL_SECRET`` when it is set by
``processors.commands.build_command`` -- the CLI's way too, so there is one
way to make a command (the worker refuses unsigned ones then) -- and sent with
a delivery report by ``producers.control.publish_command`` (the CLI's too,
here with the API's one long-lived producer): a ``202`` means the broker has
it. ``ack`` also records the acknowledgement in Redis, as ``driftline ack`` does.

Examples
--------
>>> from datetime import datetime, timezone
>>> from driftline.api.models import SnoozeRequest
>>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> command_fields("snooze", SnoozeRequest(for_s=3600, signals=["quality.brightness"]), now=now)
{'signals': ['quality.brightness'], 'model_version': None, 'requested_by': 'api', \
'reason': '', 'until': datetime.datetime(2026, 1, 1, 1, 0, tzinfo=datetime.timezone.utc)}
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any, get_args

from driftline.api.models import (
    AckRequest,
    BudgetRequest,
    ControlAccepted,
    ControlRequest,
    SnoozeRequest,
)
from driftline.errors import InvalidEvent
from driftline.settings import Settings
from processors.commands import build_command
from producers.control import publish_command
from producers.publisher import Publisher
from schemas.events import Command, utcnow
from sinks.redis_state import acknowledge

ACTIONS: tuple[str, ...] = get_args(Command.model_fields["action"].annotation)
"""Every ``Command.action``; the API has one POST per action (``set_budget`` as ``set-budget``)."""


def command_fields(action: str, req: ControlRequest, *, now: datetime | None = None
                   ) -> dict[str, Any]:
    """The ``Command`` fields of a request (validated: ``InvalidEvent`` if one is missing)."""
    fields: dict[str, Any] = {"signals": req.signals, "model_version": req.model_version,
                              "requested_by": req.by, "reason": req.reason}
    if isinstance(req, SnoozeRequest):
        if (req.until is None) == (req.for_s is None):
            raise InvalidEvent("snooze needs exactly one of until or for_s")
        fields["until"] = req.until or (now or utcnow()) + timedelta(seconds=req.for_s or 0)
    if isinstance(req, BudgetRequest):
        fields["false_alarms_per_week"] = req.false_alarms_per_week
    if isinstance(req, AckRequest) and req.alert_id is not None:
        fields["alert_id"] = req.alert_id
    return fields


class ControlPublisher:
    """One producer for the API process; ``send`` is safe from the request threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def _pub(self) -> Publisher:
        with self._lock:  # created on first use: the page works while the broker is away
            if self._publisher is None:
                self._publisher = Publisher.from_settings(self.settings, client_id="driftline-api")
            return self._publisher

    def send(self, stream_id: str, action: str, req: ControlRequest) -> ControlAccepted:
        """Build, sign, publish and wait for the broker's acknowledgement."""
        secret = self.settings.control_secret
        command = build_command(stream_id, action,  # type: ignore[arg-type]
                                secret=secret, **command_fields(action, req))
        topic = self.settings.topics.control
        publish_command(self.settings, command, publisher=self._pub())
        if isinstance(req, AckRequest):
            for sig in req.signals or []:
                acknowledge(self.settings.redis_url, stream_id, sig, alert_id=req.alert_id,
                            by=req.by, command_id=command.command_id,
                            namespace=self.settings.topic_prefix)
        return ControlAccepted(command_id=command.command_id, action=action,
                               stream_id=stream_id, topic=topic, signed=secret is not None)

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.flush(5.0)
                self._publisher = None
