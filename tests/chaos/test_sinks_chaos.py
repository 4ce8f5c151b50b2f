"""A sink process SIGKILLed mid-delivery: the alert is delivered again, same id, stored once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Alert
from sinks.redis_state import read_stream
from sinks.webhook import verify

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]

SECRET = "whsec_Y2hhb3Mtc2VjcmV0"

SINK_MAIN = """
import signal, threading
from driftline.settings import load_settings
from sinks.runner import run_sinks
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
run_sinks(load_settings(), stop)
"""


class HoldingReceiver:
    """Holds the first request open (the sink is mid-send when killed), accepts the rest."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if len(outer.requests) == 1:
                    outer.release.wait(60)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holding_receiver() -> Iterator[HoldingReceiver]:
    rx = HoldingReceiver()
    yield rx
    rx.close()


def wait_for(cond: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sink_killed_mid_webhook_redelivers_same_id(
    settings: Settings, holding_receiver: HoldingReceiver, topic_prefix: str, tmp_path: Any
) -> None:
    stream = f"{topic_prefix}-cam"
    alert = Alert(
        alert_id=f"{stream}:v1:confidence:adwin:7", stream_id=stream, model_version="v1",
        signal="confidence", detector="adwin", message="confidence drifted", statistic=0.4,
        threshold=0.2, detected_index=7, change_index=5, detected_event_id="e7",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with Publisher.from_settings(settings) as p:
        p.publish(settings.topics.alerts, alert)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(
        DRIFTLINE_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        DRIFTLINE_REDIS_URL=settings.redis_url,
        DRIFTLINE_TOPIC_PREFIX=settings.topic_prefix,
        DRIFTLINE_CONSUMER_GROUP=settings.consumer_group,
        DRIFTLINE_WEBHOOK_URL=holding_receiver.url,
        DRIFTLINE_WEBHOOK_SECRET=SECRET,
        DRIFTLINE_WEBHOOK_TIMEOUT_S="60",
    )

    def spawn(n: int) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"sinks-{n}.log", "wb")  # noqa: SIM115 - child owns it
        return subprocess.Popen([sys.executable, "-c", SINK_MAIN], env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    first = spawn(1)
    try:
        wait_for(lambda: holding_receiver.requests, what="first webhook request")
        wait_for(lambda: read_stream(settings.redis_url, stream)["recent_alerts"], what="redis")
        first.kill()  # mid-request: the webhook sink never committed
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    holding_receiver.release.set()

    second = spawn(2)
    try:
        # The old member's session must expire before its partitions move.
        wait_for(lambda: len(holding_receiver.requests) >= 2, timeout_s=90,
                 what="redelivery after restart")
    finally:
        second.terminate()
        second.wait(30)
    ids = {h["webhook-id"] for h, _ in holding_receiver.requests}
    assert ids == {alert.alert_id}
    for headers, body in holding_receiver.requests:
        assert verify(SECRET, headers, body)
    assert len(read_stream(settings.redis_url, stream)["recent_alerts"]) == 1
    assert second.returncode == 0, (tmp_path / "sinks-2.log").read_text()[-2000:]
