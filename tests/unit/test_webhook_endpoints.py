"""DRIFTLINE_WEBHOOKS: endpoints as plain data, errors at start-up naming the setting."""

from __future__ import annotations

import json

import pytest

from driftline.errors import ConfigError
from driftline.settings import Settings, WebhookEndpoint, load_settings
from schemas.events import Alert
from sinks.webhook_endpoints import endpoints, matches, message_id, payload


def _alert(**kw) -> Alert:
    base = dict(alert_id="a1", stream_id="dock-3", model_version="v1", signal="quality.brightness",
                detector="cusum", severity="warning", message="m", statistic=1.0,
                detected_index=3, change_index=1, detected_event_id="e3")
    return Alert(**{**base, **kw})


@pytest.mark.parametrize("value, where", [
    ('[{"name": "a", "url": "http://x", "secret": "topsecret-1", "format": "teams"}]',
     "[0][format]"),
    ('[{"name": "a", "url": "http://x"}]', "[0][secret]"),
    ('[{"name": "a", "url": "http://x", "secret": "topsecret-1"', "not valid JSON"),
    ('[{"name": "a", "url": "http://x", "secret": "topsecret-1"},'
     ' {"name": "a", "url": "http://y", "secret": "topsecret-2"}]', "unique"),
])
def test_a_bad_endpoint_list_stops_start_up_naming_the_setting(monkeypatch, value, where):
    monkeypatch.setenv("DRIFTLINE_WEBHOOKS", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.setting == "DRIFTLINE_WEBHOOKS" and where in str(err.value)
    assert "topsecret" not in str(err.value)


def test_the_single_endpoint_form_is_one_more_endpoint_named_default():
    s = Settings(webhook_url="https://a/h", webhook_secret="s1",
                 webhooks=[{"name": "chat", "url": "https://b/h", "secret": "s2",
                            "format": "slack"}])
    assert [(e.name, e.format) for e in endpoints(s)] == [("default", "standard"),
                                                          ("chat", "slack")]
    assert "s2" not in repr(s)


def test_filters_and_payloads():
    ep = WebhookEndpoint(name="x", url="https://x/h", secret="s", signals=["quality.*"],
                         severities=["warning"], lifecycle=["firing", "resolved"])
    assert matches(ep, _alert())
    assert not matches(ep, _alert(signal="output.confidence"))
    assert not matches(ep, _alert(severity="critical"))
    assert not matches(ep, _alert(lifecycle="acknowledged"))
    assert message_id(_alert(lifecycle="resolved")) == "a1.resolved"
    assert json.loads(payload(ep, _alert())[1])["alert_id"] == "a1"
