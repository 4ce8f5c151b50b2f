"""The operator's page in a real headless browser (Debian's chromium, selenium).

The page is served by the API (uvicorn on a free port) over a real Redis
that the real sinks filled (``api_data``); the test drives it as a user
would: the fleet and what drifts across it, a stream's chart, an alert and
its frames, and a click on "snooze" that lands on the control topic as a
signed command. That a real worker applies the click: ``test_api_worker.py``.
The ``browser`` fixture: ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from driftline.api import ApiServer
from processors.commands import ControlAuth
from schemas.events import Command, SignalState, StreamState
from schemas.wire import decode_as
from sinks.redis_state import RedisStateWriter

pytestmark = [pytest.mark.integration]

SECRET = "page-test-control-secret"
TOKEN = "page-test-api-token-0123"
STREAM, SIGNAL = "cam-api", "output.confidence"


def test_the_page_shows_a_chart_and_an_alert_and_a_snooze_click_publishes_a_signed_command(
    api_data, browser, read_topic
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings = api_data.settings.model_copy(update={"control_secret": SecretStr(SECRET)})
    # The camera ran v0 until two hours ago, in drift then: written as the Redis sink writes
    # a snapshot, it is stale (DRIFTLINE_API__STALE_AFTER_S, 1 h) and only counted.
    writer = RedisStateWriter(settings.redis_url, namespace=settings.topic_prefix)
    writer.write_state(StreamState(
        stream_id=STREAM, model_version="v0", events_seen=500,
        signals={SIGNAL: SignalState(signal=SIGNAL, status="drift", detector="cusum")},
        ts=datetime.now(UTC) - timedelta(hours=2)))
    writer.close()
    wait = WebDriverWait(browser, 20)
    with ApiServer(settings, port=0) as server:
        browser.get(server.url)
        row = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, f'#fleet tr[data-stream="{STREAM}"]')))
        assert "drift" in row.text and SIGNAL in row.text
        # Above the fleet: what drifts, grouped by model version (/api/v1/drift).
        group = wait.until(ec.visibility_of_element_located(
            (By.CSS_SELECTOR, f'#drift li[data-signal="{SIGNAL}"]')))
        assert "1 of 1 stream(s) of model v1" in group.text and STREAM in group.text
        assert (group.get_attribute("data-scope"), group.get_attribute("data-model-version")) \
            == ("streams", "v1")
        stale = browser.find_element(By.CSS_SELECTOR, '#drift li[data-stale-version="v0"]')
        assert "1 stream(s) of v0 not updated for over 1 h left out, 1 of them in drift then" \
            in stale.text and "last update 2 h ago" in stale.text
        assert not browser.find_elements(By.CSS_SELECTOR, '#drift li[data-model-version="v0"]')
        row.click()

        chart = wait.until(ec.visibility_of_element_located(
            (By.CSS_SELECTOR, f'.chart[data-signal="{SIGNAL}"] canvas')))
        assert chart.size["width"] > 300 and chart.size["height"] > 100
        legend = browser.find_element(By.CSS_SELECTOR, f'.chart[data-signal="{SIGNAL}"]').text
        assert "threshold" in legend and "statistic" in legend

        item = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, f'#timeline li[data-alert="{api_data.alert_ids[0]}"]')))
        item.click()
        detail = wait.until(ec.visibility_of_element_located((By.ID, "alert-detail")))
        wait.until(lambda b: "output.confidence fell" in detail.text)
        assert "p185" in detail.text and "(not stored)" in detail.text
        wait.until(lambda b: b.execute_script(
            "const i = document.querySelector('#alert-detail img');"
            "return i !== null && i.src.startsWith('blob:');"))

        browser.find_element(By.ID, "btn-snooze").click()
        result = browser.find_element(By.ID, "control-result")
        wait.until(lambda b: "snooze sent" in result.text)
        assert "(signed)" in result.text
        command_id = result.get_attribute("data-command-id")

    # With DRIFTLINE_API__TOKEN the page asks for the token, then shows the fleet.
    guarded = settings.model_copy(update={"api": settings.api.model_copy(
        update={"token": SecretStr(TOKEN)})})
    with ApiServer(guarded, port=0) as server:
        browser.get(server.url)
        field = wait.until(ec.visibility_of_element_located((By.ID, "token")))
        assert "needs a token" in browser.find_element(By.ID, "status-line").text
        field.send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(ec.visibility_of_element_located(
            (By.CSS_SELECTOR, f'#fleet tr[data-stream="{STREAM}"]')))

    (record,) = read_topic(settings.topics.control, 1, timeout_s=20)
    command = decode_as(Command, record.value)
    ControlAuth(SECRET).verify(command)
    assert (command.command_id, command.action, command.stream_id, command.signals) == (
        command_id, "snooze", STREAM, [SIGNAL])
    assert command.until is not None and command.requested_by == "web page"
