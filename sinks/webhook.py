"""Signed webhooks (the Standard Webhooks scheme) and a notifier that retries.

Every POST carries three headers:

- ``webhook-id``: the alert id -- the same on every retry and every
  redelivery, so a receiver deduplicates on it;
- ``webhook-timestamp``: unix seconds of this attempt;
- ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of
  ``"{webhook-id}.{webhook-timestamp}.{body}"`` (several space-separated
  signatures are allowed, e.g. during a secret rotation).

The secret is either ``whsec_<base64 key>`` (the Standard Webhooks form) or any
other string, used as UTF-8 bytes. To verify on the receiving side, copy
``verify`` (standard library only) or use a Standard Webhooks library.

Examples
--------
>>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
>>> body = b'{"test": 2432232314}'
>>> sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
>>> h = signed_headers(secret, "a1", body, timestamp=1614265330)
>>> verify(secret, h, body, now=1614265331)
True
>>> verify(secret, h, body + b" ", now=1614265331)
Traceback (most recent call last):
...
sinks.webhook.InvalidSignature: no signature matches
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from driftline.errors import (
    ConfigError,
    PermanentError,
    TransientError,
    redact,
    redact_url,
    register_secret,
)
from driftline.metrics import WEBHOOK_DELIVERIES
from schemas.events import Alert
from schemas.wire import encode
from sinks.backoff import full_jitter

if TYPE_CHECKING:
    from driftline.settings import Settings

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300
RETRY_STATUS = frozenset({408, 425, 429})


class InvalidSignature(PermanentError):
    """A webhook failed verification (missing header, stale timestamp, bad signature)."""

    reason = "invalid_signature"


class WebhookUndeliverable(PermanentError):
    """The receiver refused the alert or never accepted it within the retry budget.

    ``status``: the HTTP status of a refusal (4xx), ``None`` when the receiver
    never accepted it (down, timing out, 5xx until the budget ran out).
    """

    reason = "webhook_undeliverable"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def secret_key(secret: str | bytes) -> bytes:
    """HMAC key bytes: base64-decoded after ``whsec_``, else the secret's UTF-8 bytes.

    >>> secret_key("whsec_aGVsbG8=")
    b'hello'
    >>> secret_key("plain-secret")
    b'plain-secret'
    """
    if isinstance(secret, bytes):
        return secret
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("DRIFTLINE_WEBHOOK_SECRET", "whsec_ secret is not base64") from exc
    if not secret:
        raise ConfigError("DRIFTLINE_WEBHOOK_SECRET", "empty secret")
    return secret.encode()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str | bytes, msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers plus ``content-type`` for ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Check a received webhook; ``True`` or raise ``InvalidSignature``.

    ``body`` must be the raw request bytes (before any JSON parsing).
    Header names are matched case-insensitively. A timestamp more than
    ``tolerance_s`` away from ``now`` is refused (replay protection).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    ts_text = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not msg_id or not ts_text or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(ts_text)
    except ValueError:
        raise InvalidSignature(f"webhook-timestamp {ts_text!r} is not an integer") from None
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        raise InvalidSignature(f"webhook-timestamp is {now - ts:.0f}s away from now")
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        # compare_digest: the time taken does not leak how many bytes matched.
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return True
    raise InvalidSignature("no signature matches")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class WebhookNotifier:
    """POST alerts, signed, retried with exponential backoff and full jitter.

    Retried: connection errors, timeouts, 408/425/429 and 5xx (``Retry-After``
    is honoured, capped at ``max_delay_s``). Not retried: other 4xx. When an
    alert cannot be delivered, ``send`` raises ``WebhookUndeliverable``
    (a ``PermanentError``) so the consumer dead-letters it -- never a silent
    drop. If ``stop`` is set while waiting between attempts, ``send`` raises
    ``TransientError`` instead: the alert is not committed and is retried
    after a restart.

    Parameters
    ----------
    url, secret
        Receiver and signing secret (``whsec_...`` or raw).
    timeout_s
        Per-attempt HTTP timeout.
    max_attempts
        Attempts in total (first try included).
    base_delay_s, max_delay_s
        Backoff before attempt ``n`` (n >= 1) is ``uniform(0, min(max, base * 2**(n-1)))``.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 6,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        stop: threading.Event | None = None,
        user_agent: str = "driftline-webhook/1",
    ) -> None:
        secret_key(secret)  # fail at start-up on a malformed secret
        self.url = url
        # What logs, errors and dead letters show: scheme, host and port. A
        # webhook URL often carries a token (path or query) or credentials.
        self.safe_url = redact_url(url)
        register_secret(url)
        self.secret = secret
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.stop = stop or threading.Event()
        self._client_args: dict[str, object] = {"timeout": timeout_s,
                                                "headers": {"user-agent": user_agent}}
        # One HTTP client per sending thread (the webhook sink sends several
        # alerts at once); all closed by `close`.
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()
        self.sent = 0
        self.attempts = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, stop: threading.Event | None = None, **kwargs: object
    ) -> WebhookNotifier:
        if not settings.webhook_url or settings.webhook_secret is None:
            raise ConfigError("DRIFTLINE_WEBHOOK_URL", "no webhook configured")
        return cls(
            settings.webhook_url,
            settings.webhook_secret.get_secret_value(),
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            stop=stop,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def client(self) -> httpx.Client:
        """This thread's HTTP client."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(**self._client_args)  # type: ignore[arg-type]
            with self._lock:
                self._clients.append(client)
        return client

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        return full_jitter(attempt, base_s=self.base_delay_s, max_s=self.max_delay_s)

    def send(self, alert: Alert, on_accepted: Callable[[], object] | None = None) -> int:
        """Deliver one alert; returns the number of attempts it took.

        ``on_accepted()`` runs the moment the receiver answers 2xx, before
        anything else (the webhook ledger records the delivery there).
        """
        return self.send_raw(alert.alert_id, encode(alert), on_accepted)

    def send_raw(self, msg_id: str, body: bytes,
                 on_accepted: Callable[[], object] | None = None) -> int:
        """Deliver ``body`` with ``webhook-id: msg_id``; see ``send``."""
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            with self._lock:
                self.attempts += 1
            # A fresh timestamp per attempt: a receiver enforcing a tolerance
            # window must not refuse a retry sent minutes after the first try.
            headers = signed_headers(self.secret, msg_id, body)
            try:
                resp = self.client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:  # connect errors, timeouts, resets
                last = redact(f"{type(exc).__name__}: {exc}")
            else:
                if resp.is_success:
                    if on_accepted is not None:
                        on_accepted()
                    with self._lock:
                        self.sent += 1
                    WEBHOOK_DELIVERIES.labels("delivered").inc()
                    return attempt
                last = f"HTTP {resp.status_code}"
                if resp.status_code < 500 and resp.status_code not in RETRY_STATUS:
                    WEBHOOK_DELIVERIES.labels("undeliverable").inc()
                    raise WebhookUndeliverable(
                        f"{self.safe_url} refused alert {msg_id}: {last} "
                        f"{redact(resp.text[:200])!r}",
                        status=resp.status_code,
                    )
                retry_after = _retry_after(resp)
            if attempt == self.max_attempts:
                break
            WEBHOOK_DELIVERIES.labels("retried").inc()
            delay = self._backoff(attempt, retry_after)
            log.info("webhook %s attempt %d failed (%s); retrying in %.2fs",
                     msg_id, attempt, last, delay)
            if self.stop.wait(delay):
                raise TransientError(f"stopping while retrying webhook {msg_id} ({last})")
        WEBHOOK_DELIVERIES.labels("undeliverable").inc()
        raise WebhookUndeliverable(
            f"{self.safe_url} did not accept alert {msg_id} after {self.max_attempts} attempts: "
            f"{last}"
        )

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
