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

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit


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


# -- redaction ---------------------------------------------------------------------
#
# One helper for every message that may leave the process (logs, error text,
# dead letters, CLI output): URL credentials, credential-like query
# parameters, ``whsec_`` keys and any value registered as a secret are masked.

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]*)(?::[^/@\s]*)?@")
_QUERY = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_.-]*(?:token|secret|password|passwd|pwd|key|sig|signature|auth|"
    r"credential)[A-Za-z0-9_.-]*))=(?P<value>[^&#\s'\"]*)",
    re.IGNORECASE,
)
_WHSEC = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever ``redact`` sees it from now on (values shorter than 6 are not)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with credentials masked.

    >>> redact("redis://:hunter2@db:6379/0 down")
    'redis://***@db:6379/0 down'
    >>> redact("POST https://hooks.example/x?token=abc&n=1 failed")
    'POST https://hooks.example/x?token=***&n=1 failed'
    >>> register_secret("T0K3N-in-path"); redact("https://hooks.example/T0K3N-in-path")
    'https://hooks.example/***'
    """
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    text = _QUERY.sub(lambda m: m["key"] + "=" + MASK, text)
    return _WHSEC.sub("whsec_" + MASK, text)


def redact_url(url: str) -> str:
    """A URL safe to show: scheme, host and port only; credentials, path and query dropped.

    Webhook URLs often carry a token in the path (``/services/T0/B0/XXXX``).

    >>> redact_url("https://user:pw@hooks.example:8443/services/T0/B0/XXXX?x=1")
    'https://hooks.example:8443/***'
    >>> redact_url("http://127.0.0.1:9000/")
    'http://127.0.0.1:9000/'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = "/" if parts.path in ("", "/") and not parts.query else "/" + MASK
    return urlunsplit((parts.scheme, netloc, path, "", ""))


_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record this process emits (idempotent).

    The record's message is formatted once, redacted, and stored without
    arguments, so no handler or formatter (faust's, the CLI's) can print a
    secret a library put into a message.
    """
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging to report
            return record
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        return record

    logging.setLogRecordFactory(factory)
