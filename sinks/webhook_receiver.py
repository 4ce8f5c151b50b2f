"""A real webhook receiver on loopback: what the demo shows and the tests deliver to.

``WebhookReceiver`` runs a ``ThreadingHTTPServer`` on ``127.0.0.1`` (a free
port by default) that records every POST, verifies its Standard Webhooks
signature when given the secret (a bad one is answered ``401``), and answers
the others from a script of status codes (then ``default``, or what
``respond(headers, body)`` returns: the chaos tests pass the README's
receiver, which verifies and deduplicates on ``webhook-id``). A
``before_reply`` hook runs in the request's thread before the answer: the
demo prints each delivery there, a chaos test holds a request open.

Examples
--------
>>> import httpx
>>> from sinks.webhook import signed_headers
>>> secret = "whsec_c2VjcmV0LWZvci10ZXN0cw=="
>>> with WebhookReceiver(secret, script=[503]) as rx:
...     body = b'{"alert_id": "a1"}'
...     codes = [httpx.post(rx.url, content=body, headers=signed_headers(secret, "a1", body))
...              .status_code for _ in range(2)]
...     forged = httpx.post(rx.url, content=body, headers=signed_headers("other", "a1", body))
>>> codes, forged.status_code, len(rx.accepted()), rx.rejected
([503, 200], 401, 1, 1)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from sinks.webhook import InvalidSignature, verify


@dataclass(frozen=True)
class Delivery:
    """One POST as received: lower-cased headers, raw body, the status answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool | None  # None when the receiver has no secret

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class WebhookReceiver:
    """A real HTTP server receiving webhooks (see the module docstring).

    Parameters
    ----------
    secret
        Verify every request's signature with it; ``None`` accepts any.
    script
        Status codes for the first requests (that pass verification), in order.
    default
        Status code once the script is used up.
    retry_after
        ``Retry-After`` value sent with 429 and 503 answers.
    before_reply
        ``hook(delivery)`` called before answering (in the request's thread).
    path
        Path part of ``url`` (the server answers POSTs on any path).
    respond
        ``respond(headers, body) -> status`` answers once the script is used up
        (instead of ``default``); called in the request's thread.
    """

    def __init__(
        self,
        secret: str | bytes | None = None,
        *,
        script: list[int] | None = None,
        default: int = 200,
        retry_after: str | None = None,
        before_reply: Callable[[Delivery], object] | None = None,
        path: str = "/hooks/driftline",
        respond: Callable[[dict[str, str], bytes], int] | None = None,
    ) -> None:
        self.secret = secret
        self.script = list(script or [])
        self.default = default
        self.respond = respond
        self.requests: list[Delivery] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                delivery = outer._record(headers, body)
                if before_reply is not None:
                    before_reply(delivery)
                self.send_response(delivery.status)
                if retry_after is not None and delivery.status in (429, 503):
                    self.send_header("retry-after", retry_after)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet: a test's output is not the place for an access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="webhook-receiver")
        self._thread.start()

    def _record(self, headers: dict[str, str], body: bytes) -> Delivery:
        verified: bool | None = None
        if self.secret is not None:
            try:
                verified = verify(self.secret, headers, body)
            except InvalidSignature:
                verified = False
        with self.lock:
            scripted = self.script.pop(0) if self.script and verified is not False else None
        if verified is False:
            status = 401
        elif scripted is not None:
            status = scripted
        else:
            status = self.respond(headers, body) if self.respond else self.default
        with self.lock:
            delivery = Delivery(headers, body, status, verified)
            self.requests.append(delivery)
        return delivery

    def accepted(self) -> list[Delivery]:
        """The requests answered with a 2xx, in arrival order."""
        with self.lock:
            return [d for d in self.requests if 200 <= d.status < 300]

    @property
    def rejected(self) -> int:
        """Requests whose signature did not verify."""
        with self.lock:
            return sum(d.verified is False for d in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
