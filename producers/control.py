"""Publish operator commands on the control topic (the CLI's and the HTTP API's way in).

``processors.commands.build_command`` makes (and signs) a ``Command``;
``publish_command`` delivers it to ``<prefix>.control``, keyed by its
stream, so the worker that owns the stream applies it in order with the
stream's events. It returns only once the broker has the command. The CLI
opens a producer per command; a long-lived process (the HTTP API) hands in
its own ``publisher``.
"""

from __future__ import annotations

from driftline.settings import Settings
from processors.commands import sign_command
from producers.publisher import Publisher, event_key
from schemas.events import Command
from schemas.wire import encode


def publish_command(settings: Settings, command: Command, *,
                    publisher: Publisher | None = None, timeout_s: float = 15.0) -> str:
    """Deliver ``command`` to the control topic; return its ``command_id``.

    ``publisher``: a producer to send it with (kept open; at most
    ``timeout_s`` for the broker's report); without one, a producer is
    opened for this command and flushed.

    An unsigned command is signed with ``DRIFTLINE_CONTROL_SECRET`` when it
    is set (the worker refuses unsigned commands then); a signed one is sent
    as it is.

    Raises
    ------
    TransientError
        The broker did not acknowledge the command (``DeliveryFailed``, or no
        broker): nothing is known to be applied; publishing it again is safe
        only with a new ``command_id`` (the worker refuses a replayed one).
    """
    if command.signature is None and settings.control_secret is not None:
        command = sign_command(command, settings.control_secret.get_secret_value())
    if publisher is not None:
        publisher.send_and_wait(settings.topics.control, event_key(command), encode(command),
                                timeout_s=timeout_s)
        return command.command_id
    with Publisher.from_settings(settings, client_id="driftline-control") as pub:
        pub.publish(settings.topics.control, command)  # flushed on exit: delivered, or raises
    return command.command_id
