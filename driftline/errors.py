"""One root exception; families split by what the caller should do.

``TransientError``: the same call may succeed later (broker down, Redis
restarting, webhook receiver returning 503) -> retry with backoff.
``PermanentError``: retrying the same input gives the same answer (invalid
JSON, unknown schema version, undecodable image) -> dead-letter it and go on.
``ConfigError``: a setting is wrong -> fail at start-up, naming the setting.

Library errors (confluent-kafka, redis-py, httpx, onnxruntime, pillow) are
translated into these at the boundary where they are raised, so that callers
never need to import a library to decide whether to retry.
"""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError):
    """A setting is missing or invalid; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class TransientError(DriftlineError):
    """Retry later: the same call may succeed."""


class PermanentError(DriftlineError):
    """Do not retry: the input is bad. ``reason`` is a short machine-readable code."""

    reason: str = "invalid"

    def __init__(self, message: str, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message)


class InvalidEvent(PermanentError):
    """The bytes do not form a valid event (JSON, schema, version, size, values)."""

    reason = "invalid_event"


class UndecodableImage(PermanentError):
    """A frame's image bytes cannot be decoded (corrupt, unsupported, too large)."""

    reason = "undecodable_image"


class DeliveryFailed(TransientError):
    """A message could not be delivered to the broker or a sink in time."""
