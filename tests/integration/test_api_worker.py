"""Controls posted to the API reach a real worker: ``rereference``, ``ack`` and the page's snooze.

A real ``driftline worker`` process watches one stream of predictions, and
the real sinks write its snapshots to Redis. The API (uvicorn, real HTTP, a
control secret set: the worker verifies signatures) publishes the controls;
the worker that owns the stream applies them and its next snapshot on the
state topic shows the signal warming up again. Last, an operator clicks
"snooze" on the page in a real browser: the worker's next snapshot has the
signal snoozed by "web page", and the page, reloaded from what the sinks
wrote, shows it snoozed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import SecretStr

from driftline.api import ApiServer
from driftline.local_infra import settings_env
from producers.publisher import Publisher
from schemas.events import Prediction, StreamState
from schemas.wire import decode_as
from sinks.redis_state import ack_key
from sinks.runner import start_sinks
from tests.integration.processes import spawn, terminate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM, SIGNAL, REFERENCE_SIZE = "cam-api-worker", "output.confidence", 60
SECRET = "api-worker-control-secret"


def _predictions(settings, start: int, n: int) -> None:
    rng = np.random.default_rng(start)
    with Publisher(settings.bootstrap_servers) as pub:
        for i in range(start, start + n):
            pub.publish(settings.topics.predictions, Prediction(
                event_id=f"p{i}", stream_id=STREAM, model_version="v1", top_class="cat",
                confidence=float(np.clip(0.85 + 0.03 * rng.normal(), 0, 1)), frame_index=i))


def _next_state(consumer: Consumer, worker: subprocess.Popen, log: Path, pred,
                timeout_s: float = 40.0) -> StreamState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()[-3000:]
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        st = decode_as(StreamState, msg.value() or b"")
        if st.stream_id == STREAM and pred(st):
            return st
    raise AssertionError(f"no such snapshot within {timeout_s}s")


def _snooze_on_the_page(browser, url: str) -> str:
    """Open the stream on the page, pick the signal, click "snooze"; the command id."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{url}#/stream/{STREAM}")
    wait.until(lambda b: b.execute_script(  # once the sinks wrote the worker's snapshots
        "route(); return [...document.querySelectorAll('#control-signal option')]"
        f".some(o => o.value === '{SIGNAL}');"))
    wait.until(lambda b: _pick_and_snooze(b, By, Select))
    wait.until(lambda b: "snooze sent" in b.find_element(By.ID, "control-result").text)
    result = browser.find_element(By.ID, "control-result")
    assert "(signed)" in result.text
    return str(result.get_attribute("data-command-id"))


def _pick_and_snooze(browser, by, select) -> bool:
    """Pick the signal and click "snooze"; False (retry) when the page re-rendered under us.

    The page refreshes its stream view while the sinks keep writing snapshots:
    an element found a moment ago can be replaced (StaleElementReferenceException
    under load), and a re-rendered select may be back on another signal.
    """
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        select(browser.find_element(by.ID, "control-signal")).select_by_visible_text(SIGNAL)
        if browser.find_element(by.ID, "control-signal").get_attribute("value") != SIGNAL:
            return False
        browser.find_element(by.ID, "btn-snooze").click()
    except StaleElementReferenceException:
        return False
    return True


def _page_shows_snoozed(browser) -> None:
    """The page, re-read from the API, shows the snooze on the fleet row and the chart."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "route(); return document.querySelector("
        f"'#fleet tr[data-stream=\"{STREAM}\"] [data-snoozed=\"{SIGNAL}\"]') !== null"
        f" && document.querySelector('.chart[data-signal=\"{SIGNAL}\"] .badge.snoozed')"
        " !== null && document.querySelector('#control-history li[data-command]') !== null;"))


def test_controls_posted_to_the_api_and_clicked_on_the_page_are_applied_by_a_real_worker(
    settings, tmp_path: Path, browser
) -> None:
    settings = settings.model_copy(update={
        "control_secret": SecretStr(SECRET),
        "monitor": settings.monitor.model_copy(update={"reference_size": REFERENCE_SIZE}),
        "state_every": 20, "state_interval_s": 1.0})
    topic = settings.topics.state
    states = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "states",
                       "enable.auto.commit": False})
    parts = states.list_topics(topic, timeout=10).topics[topic].partitions
    states.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    log = tmp_path / "worker.log"
    worker = spawn(["worker"], settings_env(settings), log)
    stop = threading.Event()
    sinks = start_sinks(settings, stop, consumer_conf={"session.timeout.ms": 6000})
    try:
        with ApiServer(settings, port=0) as server, \
                httpx.Client(base_url=server.url, timeout=20) as http:
            n = REFERENCE_SIZE + 20
            _predictions(settings, 0, n)
            st = _next_state(states, worker, log, lambda s: s.events_seen == n)
            assert st.signals[SIGNAL].status == "ok"

            res = http.post(f"/api/v1/streams/{STREAM}/rereference",
                            json={"signals": [SIGNAL], "by": "test"})
            assert res.status_code == 202 and res.json()["signed"], res.text
            st = _next_state(states, worker, log,
                             lambda s: s.signals[SIGNAL].status == "warming_up")
            assert st.events_seen == n  # the command alone changed the monitor

            # 20 events into the new reference, then the ack drops it again.
            _predictions(settings, n, 20)
            st = _next_state(states, worker, log, lambda s: s.events_seen == n + 20)
            assert len(st.monitor["signals"][SIGNAL]["reference"]) == 20

            res = http.post(f"/api/v1/streams/{STREAM}/ack",
                            json={"signals": [SIGNAL], "alert_id": "a-1", "by": "ops"})
            assert res.status_code == 202, res.text
            st = _next_state(states, worker, log,
                             lambda s: not s.monitor["signals"][SIGNAL]["reference"])
            assert (st.events_seen, st.signals[SIGNAL].status) == (n + 20, "warming_up")

            command_id = _snooze_on_the_page(browser, server.url)
            st = _next_state(states, worker, log, lambda s: SIGNAL in s.controls.snoozed)
            snoozed = st.controls.snoozed[SIGNAL]
            assert (snoozed.command_id, snoozed.by, st.events_seen) == (
                command_id, "web page", n + 20)
            assert 3500 < (snoozed.until - snoozed.ts).total_seconds() <= 3600
            _page_shows_snoozed(browser)
        r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        ack = json.loads(r.get(ack_key(STREAM, SIGNAL, settings.topic_prefix)))
        r.close()
        assert (ack["alert_id"], ack["by"], ack["command_id"]) == ("a-1", "ops",
                                                                  res.json()["command_id"])
        assert "unauthenticated" not in log.read_text()
    finally:
        stop.set()
        sinks.join(10)
        states.close()
        terminate(worker)
